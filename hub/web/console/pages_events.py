"""Events: the list with the API's filters and payload search, one event in full, its raw
body as a download, and replaying it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from hub.admin.event_links import incidents_fed_by
from hub.admin.search import PayloadSearch, SearchError, parse_contains, search_events
from hub.admin.tokens import Scope
from hub.events.models import Status
from hub.events.queries import BadCursor, EventFilter, StoredEvent
from hub.web.common import describe_invalid
from hub.web.console.context import Console
from hub.web.console.guard import Signed, Viewer
from hub.web.console.render import Refused
from hub.web.schemas import EventQuery
from integrations.base import Malformed
from integrations.payloads import decode

PAGE = 50
FIELDS = ("provider", "type", "status", "since", "until", "q", "contains")
# The filters a bulk replay takes (the API's); a payload search is not one of them.
REPLAY_FIELDS = ("provider", "type", "status", "since", "until")


@dataclass(frozen=True, slots=True)
class ListQuery:
    filters: EventFilter
    search: PayloadSearch
    cursor: str | None
    shown: dict[str, str]  # what the form shows and links carry, as typed
    error: str | None


def read_query(request: Request) -> ListQuery:
    shown = {k: v.strip() for k in FIELDS if (v := request.query_params.get(k, "")).strip()}
    cursor = request.query_params.get("cursor") or None
    api = {k: v for k, v in shown.items() if k in REPLAY_FIELDS}
    try:
        query = EventQuery.model_validate(api)
        filters = EventFilter(query.provider, query.type, query.status, query.since, query.until)
        contains = parse_contains(shown["contains"]) if "contains" in shown else None
    except ValidationError as exc:
        return ListQuery(EventFilter(), PayloadSearch(), None, shown, describe_invalid(exc))
    except SearchError as exc:
        return ListQuery(EventFilter(), PayloadSearch(), None, shown, str(exc))
    return ListQuery(filters, PayloadSearch(shown.get("q"), contains), cursor, shown, None)


def add_routes(router: APIRouter, console: Console) -> None:
    reader = Depends(console.auth.reads())
    replayer = Depends(console.auth.acts(Scope.REPLAY))

    @router.get("/events")
    def events(request: Request, partial: bool = False, viewer: Viewer = reader) -> HTMLResponse:
        query = read_query(request)
        listing = _list(console, query)
        template = "event_rows.html" if partial else "events.html"
        providers = sorted({e.provider for e in console.container.endpoints.values()})
        return console.page(
            template,
            viewer,
            query=query,
            statuses=[s.value for s in Status],
            providers=providers,
            **listing,
        )

    @router.get("/events/{event_id}")
    def event(event_id: str, notice: str | None = None, viewer: Viewer = reader) -> HTMLResponse:
        stored = _found(console, event_id)
        return console.page(
            "event.html",
            viewer,
            notice=notice,
            event=stored.event,
            headers=sorted(stored.headers.items()),
            attempts=stored.attempts,
            body=_body(stored),
            fed=incidents_fed_by(console.engine, stored.event.id),
        )

    @router.get("/events/{event_id}/raw")
    def raw(event_id: str, viewer: Viewer = reader) -> Response:
        stored = _found(console, event_id)
        # An attachment, never rendered: the bytes are the sender's, byte for byte.
        disposition = f'attachment; filename="{stored.event.id}.body"'
        return Response(
            stored.body,
            media_type="application/octet-stream",
            headers={"Content-Disposition": disposition},
        )

    @router.post("/events/{event_id}/replay")
    def replay(event_id: str, signed: Signed = replayer) -> RedirectResponse:
        viewer, _ = signed
        result = console.replayer.replay_one(event_id, viewer.actor)
        if result.verdict == "not_found":
            raise Refused(404, "Not found", f"no event with id {event_id[:64]!r}")
        notice = {"queued": "replayed", "active": "replay-active"}.get(result.verdict)
        target = f"/console/events/{event_id}?notice={notice or 'replay-redacted'}"
        return RedirectResponse(target, status_code=303)


def _list(console: Console, query: ListQuery) -> dict[str, Any]:
    if query.error:
        return {"items": [], "next_cursor": None, "scanned": None, "error": query.error}
    try:
        if query.search:
            found = search_events(
                console.engine, query.filters, query.search, query.cursor, limit=PAGE
            )
            scanned = found.scanned if found.budget_spent else None
            return {
                "items": found.items,
                "next_cursor": found.next_cursor,
                "scanned": scanned,
                "error": None,
            }
        page = console.events.list_events(query.filters, query.cursor, PAGE)
    except BadCursor:
        return {
            "items": [],
            "next_cursor": None,
            "scanned": None,
            "error": "That page link is not one the console made; start again.",
        }
    return {"items": page.items, "next_cursor": page.next_cursor, "scanned": None, "error": None}


def _found(console: Console, event_id: str) -> StoredEvent:
    stored = console.events.get_event(event_id)
    if stored is None:
        raise Refused(404, "Not found", f"no event with id {event_id[:64]!r}")
    return stored


@dataclass(frozen=True, slots=True)
class Body:
    raw: str | None  # the body as text, or None when it is not UTF-8
    pretty: Any  # the decoded payload, or None
    size: int


def _body(stored: StoredEvent) -> Body:
    try:
        text: str | None = stored.body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    try:
        pretty: Any = decode({str(k): str(v) for k, v in stored.headers.items()}, stored.body)
    except Malformed:
        pretty = None
    return Body(text, pretty, len(stored.body))
