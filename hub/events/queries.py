"""The read side of the admin API: events, their attempts, and counts, with SQLAlchemy Core.

Listing is keyset paging on the event id: ids are time-ordered, so "newest first" is
`ORDER BY id DESC` and the next page starts below the last id seen. Unlike OFFSET, a page
costs the same at any depth and events stored meanwhile do not shift later pages."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, select

from hub.events.ids import id_floor
from hub.events.models import Status, as_utc
from hub.events.store import attempts, event_bodies, events, with_bodies

MAX_LIMIT = 500
_EVENT_ID = re.compile(r"evt_[0-9A-HJKMNP-TV-Z]{26}")
# A cursor is the base64url of one id (30 chars -> 40); anything longer was not issued here.
_MAX_CURSOR_CHARS = 64


def clamp_limit(limit: int) -> int:
    """How many rows one page of any admin list (events, incidents, audit) may hold."""
    return max(1, min(limit, MAX_LIMIT))


class BadCursor(ValueError):
    """A cursor this API did not issue (edited, truncated, or from elsewhere)."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to read; `since <= received_at < until`. Reused by replay-by-filter."""

    provider: str | None = None
    type: str | None = None
    status: Status | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.provider is not None:
            out.append(events.c.provider == self.provider)
        if self.type is not None:
            out.append(events.c.type == self.type)
        if self.status is not None:
            out.append(events.c.status == self.status.value)
        # The id range finds the rows through the primary key; the received_at test then
        # keeps the bounds exact to the microsecond (ids carry milliseconds).
        if self.since is not None:
            out.append(events.c.id >= id_floor(self.since))
            out.append(events.c.received_at >= as_utc(self.since))
        if self.until is not None:
            out.append(events.c.id < id_floor(self.until + timedelta(milliseconds=1)))
            out.append(events.c.received_at < as_utc(self.until))
        return out


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    provider: str
    type: str
    delivery_id: str
    status: str
    received_at: datetime
    updated_at: datetime
    runs: int
    last_error: str | None
    redacted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    workflow: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error: str | None
    traceback: str | None
    detail: str | None
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event: EventRow
    headers: dict[str, Any]
    body: bytes
    attempts: list[AttemptRow]

    @property
    def decided_by(self) -> str | None:
        """The routing rules behind its latest run (None: the built-in catalogue alone)."""
        return self.attempts[-1].rule if self.attempts else None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[EventRow]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Counts:
    by_status: dict[str, int]
    by_provider: dict[str, int]


_SUMMARY = (
    events.c.id,
    events.c.provider,
    events.c.type,
    events.c.delivery_id,
    events.c.status,
    events.c.received_at,
    events.c.updated_at,
    events.c.runs,
    events.c.last_error,
    events.c.redacted_at,
)
_ATTEMPT = (
    attempts.c.workflow,
    attempts.c.started_at,
    attempts.c.finished_at,
    attempts.c.outcome,
    attempts.c.error,
    attempts.c.traceback,
    attempts.c.detail,
    attempts.c.rule,
)


class EventQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get_event(self, event_id: str) -> StoredEvent | None:
        """The event and its attempts, read in one transaction so they agree."""
        head = (
            select(*_SUMMARY, events.c.headers, event_bodies.c.body)
            .select_from(with_bodies)
            .where(events.c.id == event_id)
        )
        tries = (
            select(*_ATTEMPT)
            .where(attempts.c.event_id == event_id)
            .order_by(attempts.c.started_at, attempts.c.id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(head).first()
            if row is None:
                return None
            attempt_rows = [_attempt(r._mapping) for r in conn.execute(tries)]
        return StoredEvent(
            event=_event(row._mapping),
            headers=dict(row.headers or {}),
            # Some drivers hand back memoryview for binary columns.
            body=bytes(row.body),
            attempts=attempt_rows,
        )

    def list_events(self, filters: EventFilter, cursor: str | None, limit: int) -> Page:
        """Newest first. Raises BadCursor for a cursor this API did not issue."""
        limit = clamp_limit(limit)
        stmt = select(*_SUMMARY).where(*filters.clauses())
        if cursor is not None:
            stmt = stmt.where(events.c.id < decode_cursor(cursor))
        # One row past the page tells whether there is a next page without a trailing empty one.
        # With a status filter, (status = ?, id < ?) ORDER BY id DESC walks ix_events_status_id.
        stmt = stmt.order_by(events.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = [_event(r._mapping) for r in conn.execute(stmt)]
        more = len(rows) > limit
        items = rows[:limit]
        return Page(items, encode_cursor(items[-1].id) if more else None)

    def stats(self) -> Counts:
        by_status = select(events.c.status, func.count()).group_by(events.c.status)
        by_provider = select(events.c.provider, func.count()).group_by(events.c.provider)
        with self.engine.connect() as conn:
            statuses = _counts(conn, by_status)
            providers = _counts(conn, by_provider)
        # Every status is always present so dashboards need not special-case a missing key.
        return Counts({s.value: 0 for s in Status} | statuses, providers)


def encode_cursor(event_id: str) -> str:
    return base64.urlsafe_b64encode(event_id.encode("ascii")).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> str:
    # b64decode raises a plain ValueError on non-ASCII text: refuse that here, as a bad cursor.
    if not cursor or len(cursor) > _MAX_CURSOR_CHARS or not cursor.isascii():
        raise BadCursor(cursor)
    try:
        event_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise BadCursor(cursor) from None
    # b64decode skips characters outside the alphabet; the round trip refuses such cursors.
    if not _EVENT_ID.fullmatch(event_id) or encode_cursor(event_id) != cursor:
        raise BadCursor(cursor)
    return event_id


def _event(m: Any) -> EventRow:
    return EventRow(
        id=m["id"],
        provider=m["provider"],
        type=m["type"],
        delivery_id=m["delivery_id"],
        status=m["status"],
        received_at=as_utc(m["received_at"]),
        updated_at=as_utc(m["updated_at"]),
        runs=m["runs"],
        last_error=m["last_error"],
        redacted_at=as_utc(m["redacted_at"]) if m["redacted_at"] is not None else None,
    )


def _attempt(m: Any) -> AttemptRow:
    finished = m["finished_at"]
    return AttemptRow(
        workflow=m["workflow"],
        started_at=as_utc(m["started_at"]),
        finished_at=as_utc(finished) if finished is not None else None,
        outcome=m["outcome"],
        error=m["error"],
        traceback=m["traceback"],
        detail=m["detail"],
        rule=m["rule"],
    )


def _counts(conn: Connection, stmt: Any) -> dict[str, int]:
    return {key: int(n) for key, n in conn.execute(stmt)}
