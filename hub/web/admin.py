"""The admin read API under /admin: events, their bodies and attempts, and counts.

Endpoints are plain `def`: FastAPI runs them in its threadpool, where blocking database
reads do not hold up the event loop that the webhook ingress shares."""

from __future__ import annotations

import base64
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from hub.queries import (
    AttemptRow,
    BadCursor,
    EventFilter,
    EventQueries,
    EventRow,
    StoredEvent,
)
from hub.web.auth import admin_auth
from hub.web.schemas import (
    ApiError,
    AttemptOut,
    ErrorOut,
    EventDetail,
    EventPage,
    EventQuery,
    EventSummary,
    Stats,
)

if TYPE_CHECKING:
    from hub.container import Container

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class AdminRoute(APIRoute):
    """Answers errors as `{"error", "reason"}`, like the webhook ingress, rather than
    FastAPI's `{"detail": ...}`, without a handler on the whole app."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            except RequestValidationError as exc:
                return ApiError(422, "invalid_request", _describe(exc)).response()

        return handle


def _describe(exc: RequestValidationError) -> str:
    # loc and msg only: pydantic's `input` would echo whatever the caller sent.
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is invalid"


def _errors(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    # Every error is listed so /docs shows this API's shape, not FastAPI's HTTPValidationError.
    return {code: {"model": ErrorOut, "description": d} for code, d in described.items()}


_INVALID = "A parameter failed validation"


def router(container: Container) -> APIRouter:
    reads = EventQueries(container.engine)
    api = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(admin_auth(container.settings.admin_tokens))],
        route_class=AdminRoute,
        responses=_errors({401: "Missing or wrong bearer token"}),
    )

    @api.get(
        "/events",
        summary="List events, newest first, without bodies",
        responses=_errors({400: "A cursor this API did not issue", 422: _INVALID}),
    )
    def list_events(query: Annotated[EventQuery, Query()]) -> EventPage:
        filters = EventFilter(query.provider, query.type, query.status, query.since, query.until)
        try:
            page = reads.list_events(filters, query.cursor, query.limit)
        except BadCursor:
            reason = "cursor is not one this API issued; start again without it"
            raise ApiError(400, "bad_cursor", reason) from None
        return EventPage(items=[_summary(r) for r in page.items], next_cursor=page.next_cursor)

    @api.get(
        "/events/{event_id}",
        summary="One event: raw body, kept headers, every attempt",
        responses=_errors({404: "No such event", 422: _INVALID}),
    )
    def get_event(event_id: str) -> EventDetail:
        stored = reads.get_event(event_id)
        if stored is None:
            raise ApiError(404, "not_found", f"no event with id {event_id[:64]!r}")
        return _detail(stored)

    @api.get("/stats", summary="Event counts by status and by provider")
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
    )


def _text(body: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # JSON strings cannot carry arbitrary bytes; base64 keeps them exact.
        return base64.b64encode(body).decode("ascii"), "base64"


def _attempt(row: AttemptRow) -> AttemptOut:
    return AttemptOut.model_validate(row, from_attributes=True)
