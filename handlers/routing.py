"""Which workflows run for which event: a plain table, read top to bottom.

An event whose (provider, type) is not here is stored and marked `ignored`."""

from __future__ import annotations

from handlers import system
from handlers.context import Workflow

ROUTES: dict[tuple[str, str], tuple[Workflow, ...]] = {
    ("github", "ping"): (system.acknowledge_ping,),
}


def workflows_for(provider: str, event_type: str) -> tuple[Workflow, ...]:
    return ROUTES.get((provider, event_type), ())
