"""The admin API for events under /admin: list, read, count (replays: admin_replay.py).

Endpoints are plain `def`: FastAPI runs them in its threadpool, where blocking database
reads do not hold up the event loop that the webhook ingress shares."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Query

from hub.admin.search import (
    PayloadSearch,
    SearchError,
    SearchPage,
    parse_contains,
    search_events,
)
from hub.admin.tokens import Scope
from hub.events.queries import (
    AttemptRow,
    BadCursor,
    EventFilter,
    EventQueries,
    EventRow,
    Page,
    StoredEvent,
)
from hub.web.auth import AdminAuth
from hub.web.common import INVALID, admin_router, errors
from hub.web.schemas import (
    ApiError,
    AttemptOut,
    EventDetail,
    EventPage,
    EventQuery,
    EventSummary,
    Stats,
)

if TYPE_CHECKING:
    from hub.container import Container


def router(container: Container, auth: AdminAuth) -> APIRouter:
    reads = EventQueries(container.engine)
    api = admin_router(auth.authenticate, tags=["events"])
    reader = [Depends(auth.requires(Scope.READ))]

    @api.get(
        "/events",
        summary="List events, newest first, without bodies",
        dependencies=reader,
        responses=errors(
            {
                400: "A cursor this API did not issue, or a `contains` that is not a JSON "
                "object or array",
                422: INVALID,
            }
        ),
    )
    def list_events(query: Annotated[EventQuery, Query()]) -> EventPage:
        filters = EventFilter(query.provider, query.type, query.status, query.since, query.until)
        try:
            search = PayloadSearch(
                query.q, parse_contains(query.contains) if query.contains else None
            )
            page: Page | SearchPage
            if search:
                page = search_events(
                    container.engine, filters, search, query.cursor, limit=query.limit
                )
            else:
                page = reads.list_events(filters, query.cursor, query.limit)
        except SearchError as exc:
            # 400, not 422: the parameter is a valid string; what it says cannot be searched.
            raise ApiError(400, "bad_search", f"contains: {exc}") from None
        except BadCursor:
            reason = "cursor is not one this API issued; start again without it"
            raise ApiError(400, "bad_cursor", reason) from None
        return EventPage(items=[_summary(r) for r in page.items], next_cursor=page.next_cursor)

    @api.get(
        "/events/{event_id}",
        summary="One event: raw body, kept headers, every attempt",
        dependencies=reader,
        responses=errors({404: "No such event", 422: INVALID}),
    )
    def get_event(event_id: str) -> EventDetail:
        stored = reads.get_event(event_id)
        if stored is None:
            raise ApiError(404, "not_found", f"no event with id {event_id[:64]!r}")
        return _detail(stored)

    @api.get("/stats", summary="Event counts by status and by provider", dependencies=reader)
    def stats() -> Stats:
        counts = reads.stats()
        return Stats(by_status=counts.by_status, by_provider=counts.by_provider)

    return api


def _summary(row: EventRow) -> EventSummary:
    return EventSummary.model_validate(row, from_attributes=True)


def _detail(stored: StoredEvent) -> EventDetail:
    body, encoding = _text(stored.body)
    return EventDetail(
        **_summary(stored.event).model_dump(),
        headers={str(k): str(v) for k, v in stored.headers.items()},
        body=body,
        body_encoding=encoding,
        attempts=[_attempt(a) for a in stored.attempts],
        rule=stored.decided_by,
    )


def _text(body: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # JSON strings cannot carry arbitrary bytes; base64 keeps them exact.
        return base64.b64encode(body).decode("ascii"), "base64"


def _attempt(row: AttemptRow) -> AttemptOut:
    return AttemptOut.model_validate(row, from_attributes=True)
