"""Every write the event lifecycle makes. Statements are batched: the hot path and the workers
call these with many ids at once, and each call is one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, and_, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.db import write
from hub.ids import new_event_id
from hub.models import ACTIVE, Attempt, Event, Status, utcnow

events: Table = Event.__table__  # type: ignore[attr-defined]
attempts: Table = Attempt.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class NewEvent:
    provider: str
    delivery_id: str
    type: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Stored:
    event_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    provider: str
    type: str
    runs: int


@dataclass(slots=True)
class AttemptRecord:
    workflow: str
    started_at: datetime
    finished_at: datetime
    outcome: str  # "ok" | "error"
    error: str | None = None
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class Timing:
    """How long an event may sit in each active state before the sweeper takes it back."""

    received_s: float = 10.0
    queued_s: float = 300.0
    lease_s: float = 30.0


@dataclass
class EventStore:
    engine: Engine
    timing: Timing = field(default_factory=Timing)

    def __post_init__(self) -> None:
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        # ON CONFLICT DO NOTHING: the unique key, not a read-then-write, makes one row per
        # delivery even when two copies race in from different processes.
        self._insert = (
            dialect.insert(events)
            .on_conflict_do_nothing(index_elements=["provider", "delivery_id"])
            .returning(events.c.id)
        )

    def insert(self, batch: Sequence[NewEvent], status: Status = Status.RECEIVED) -> list[Stored]:
        """Store a batch in one transaction; the answer for each item, in order.

        `queued` is for an in-memory queue, which cannot fail apart from this process: the
        events go straight to it after the commit, and `recover` takes them back at start."""
        now = utcnow()
        wait = self.timing.received_s if status == Status.RECEIVED else self.timing.queued_s
        deadline = now + timedelta(seconds=wait)
        first: dict[tuple[str, str], str] = {}
        rows: list[dict[str, Any]] = []
        for ev in batch:
            key = (ev.provider, ev.delivery_id)
            if key in first:
                continue  # a repeat inside the same batch (Slack retries race the original)
            first[key] = new_event_id()
            rows.append(_row(first[key], ev, now, deadline, status))
        with write(self.engine) as conn:
            inserted = {r[0] for r in conn.execute(self._insert, rows)}
            missing = [k for k, eid in first.items() if eid not in inserted]
            existing = self._existing_ids(conn, missing) if missing else {}
        seen: set[tuple[str, str]] = set()
        out = []
        for ev in batch:
            key = (ev.provider, ev.delivery_id)
            eid = first[key]
            if eid in inserted and key not in seen:
                out.append(Stored(eid, duplicate=False))
            else:
                out.append(Stored(existing.get(key, eid), duplicate=True))
            seen.add(key)
        return out

    def _existing_ids(self, conn: Any, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        stmt = select(events.c.provider, events.c.delivery_id, events.c.id).where(
            tuple_(events.c.provider, events.c.delivery_id).in_(keys)
        )
        return {(p, d): i for p, d, i in conn.execute(stmt)}

    def mark_queued(self, ids: Sequence[str]) -> None:
        now = utcnow()
        # SKIP LOCKED: a row a worker holds is already past `received`.
        stmt = (
            update(events)
            .where(
                events.c.id.in_(_locked(events.c.id.in_(ids), skip=True)),
                events.c.status == Status.RECEIVED,
            )
            .values(
                status=Status.QUEUED,
                updated_at=now,
                deadline=now + timedelta(seconds=self.timing.queued_s),
            )
        )
        with write(self.engine) as conn:
            conn.execute(stmt)

    def claim(self, ids: Sequence[str]) -> list[Claimed]:
        """Take events for processing. An event already settled, or held by a live worker,
        is not returned: redelivered and duplicate messages become no-ops here."""
        now = utcnow()
        stmt = (
            update(events)
            .where(
                events.c.id.in_(_locked(events.c.id.in_(ids), skip=False)),
                or_(
                    events.c.status.in_([Status.RECEIVED, Status.QUEUED]),
                    and_(events.c.status == Status.PROCESSING, events.c.deadline < now),
                ),
            )
            .values(
                status=Status.PROCESSING,
                runs=events.c.runs + 1,
                updated_at=now,
                deadline=now + timedelta(seconds=self.timing.lease_s),
            )
            .returning(events.c.id, events.c.provider, events.c.type, events.c.runs)
        )
        with write(self.engine) as conn:
            return [Claimed(*row) for row in conn.execute(stmt)]

    def settle(
        self,
        ids: Sequence[str],
        status: Status,
        records: Iterable[tuple[str, AttemptRecord]] = (),
        *,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record attempts and move events on, in one transaction.

        `retry_at` puts them back to `queued` with a deadline past the retry time, so a lost
        delayed message is still swept up."""
        now = utcnow()
        deadline = None
        if retry_at is not None:
            deadline = retry_at + timedelta(seconds=self.timing.queued_s)
        rows = [{"event_id": eid, **_attempt_row(rec)} for eid, rec in records]
        with write(self.engine) as conn:
            # Events first: the attempts' foreign keys then lock rows this transaction holds.
            if ids:
                conn.execute(
                    update(events)
                    .where(
                        events.c.id.in_(_locked(events.c.id.in_(ids), skip=False)),
                        events.c.status == Status.PROCESSING,
                    )
                    .values(status=status, updated_at=now, deadline=deadline, last_error=error)
                )
            if rows:
                conn.execute(insert(attempts), rows)

    def sweep(self, limit: int = 1000, *, untouched_since: datetime | None = None) -> list[str]:
        """Claim active events whose deadline passed and put them back to `received`, as if
        just stored: the caller enqueues them, and if that fails they come round again soon.

        The deadline test is repeated in the outer UPDATE so that concurrent sweepers in
        other processes never take the same event twice. `untouched_since` ignores deadlines
        and takes every active event not changed since then: for an embedded hub starting up,
        whose in-memory queue died with the previous process."""
        now = utcnow()
        if untouched_since is None:
            overdue = and_(events.c.deadline < now, events.c.status.in_(ACTIVE))
        else:
            overdue = and_(events.c.updated_at < untouched_since, events.c.status.in_(ACTIVE))
        stmt = (
            update(events)
            .where(events.c.id.in_(_locked(overdue, skip=True, limit=limit)), overdue)
            .values(
                status=Status.RECEIVED,
                updated_at=now,
                deadline=now + timedelta(seconds=self.timing.received_s),
            )
            .returning(events.c.id)
        )
        with write(self.engine) as conn:
            return [row[0] for row in conn.execute(stmt)]


def _locked(condition: Any, *, skip: bool, limit: int | None = None) -> Any:
    """Ids to update, locked in id order (PostgreSQL; SQLite has one writer anyway).

    Two UPDATEs with `id IN (...)` lock rows in whatever order the plan visits them and can
    deadlock each other; locking through an ordered SELECT ... FOR UPDATE cannot."""
    stmt = select(events.c.id).where(condition).order_by(events.c.id).limit(limit)
    return stmt.with_for_update(skip_locked=skip).scalar_subquery()


def _row(
    eid: str, ev: NewEvent, now: datetime, deadline: datetime, status: Status
) -> dict[str, Any]:
    return {
        "id": eid,
        "provider": ev.provider,
        "delivery_id": ev.delivery_id,
        "type": ev.type,
        "status": status,
        "received_at": now,
        "updated_at": now,
        "deadline": deadline,
        "runs": 0,
        "headers": ev.headers,
        "body": ev.body,
    }


def _attempt_row(rec: AttemptRecord) -> dict[str, Any]:
    return {
        "workflow": rec.workflow,
        "started_at": rec.started_at,
        "finished_at": rec.finished_at,
        "outcome": rec.outcome,
        "error": rec.error,
        "traceback": rec.traceback,
    }
