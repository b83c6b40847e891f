"""What every console page module is given: the container's parts it reads and the guard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi.responses import HTMLResponse

from hub.admin.replay import Replayer
from hub.events.queries import EventQueries
from hub.web.console.guard import ConsoleAuth, Viewer
from hub.web.console.render import page

if TYPE_CHECKING:
    from hub.container import Container

# What a redirect after a change may say: fixed text chosen by a code, never echoed input.
NOTICES = {
    "replayed": "Replay queued: the event runs through its workflows again.",
    "replay-active": "The event is already queued or running; it was left as it is.",
    "replay-redacted": "Retention emptied this event's body; it cannot run again.",
    "acknowledged": "Acknowledged: the Slack message is updated and its thread names you.",
    "resolved": "Resolved: the Slack message is updated and its thread names you.",
    "reopened": "Reopened: the Slack message is updated and its thread names you.",
    "conflict": "Nothing changed: the incident is not in a state this applies to.",
    "cancelled": "Replay cancelled: events not yet taken went back to their status.",
    "signed-out": "Signed out.",
    "rules-reloaded": "Reloaded: every process uses the file within seconds.",
    "silence-added": "Silence added.",
    "silence-expired": "Silence expired: what it held is posted now if still live.",
    "revoked": "Your token was revoked or changed: sign in again.",
}


@dataclass
class Console:
    container: Container
    auth: ConsoleAuth
    replayer: Replayer
    events: EventQueries = field(init=False)

    def __post_init__(self) -> None:
        self.events = EventQueries(self.container.engine)

    @property
    def engine(self) -> Any:
        return self.container.engine

    def page(
        self, template: str, viewer: Viewer | None, notice: str | None = None, **context: Any
    ) -> HTMLResponse:
        return page(template, viewer=viewer, notice=NOTICES.get(notice or ""), **context)
