"""Every write the event lifecycle makes. Statements are batched: the hot path and the workers
call these with many ids at once, and each call is one transaction."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    Engine,
    Integer,
    Table,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    update,
)

from hub.events.batch_insert import BatchInsert, InsertPlan, NewEvent, Stored
from hub.events.models import ACTIVE, Attempt, Event, EventBody, Status, utcnow
from hub.runtime.db import write
from hub.runtime.rows import insert_rows, one_of

# NewEvent and Stored live with the insert that makes them; the store's callers import them here.
__all__ = ["AttemptRecord", "Claimed", "EventStore", "NewEvent", "Stored", "Timing"]

events: Table = Event.__table__  # type: ignore[attr-defined]
event_bodies: Table = EventBody.__table__  # type: ignore[attr-defined]
# The events with their bodies, for the reads that need both (every event has its body row).
with_bodies = events.join(event_bodies, event_bodies.c.event_id == events.c.id)
attempts: Table = Attempt.__table__  # type: ignore[attr-defined]


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
    outcome: str  # "ok" | "error" | "stale" | "unfetched"
    error: str | None = None
    traceback: str | None = None
    detail: str | None = None  # for `stale`: what had superseded the event
    rule: str | None = None  # the routing rules that decided the run, comma-separated


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
    # Recorded on the events this process claims: a `hub worker` process's consumer id, so
    # that its supervisor can hand them back if it dies (release_claims). None elsewhere.
    claimer: str | None = None

    def __post_init__(self) -> None:
        # Statements are built once: constructing SQLAlchemy expressions per call costs more
        # than running them. `p_*` are the bound values.
        dialect = self.engine.dialect.name
        # One parameter: the same statement text for any number of ids (rows.py).
        listed = one_of(events.c.id, "p_ids", dialect)
        by_ids = _locked(listed, dialect, skip=False)
        # ON CONFLICT DO NOTHING: the unique key, not a read-then-write, makes one row per
        # delivery even when two copies race in from different processes.
        self._insert = BatchInsert(self.engine.dialect.name)
        moved: dict[str, Any] = {
            "updated_at": bindparam("p_now"),
            "deadline": bindparam("p_deadline"),
        }
        # `status || ''` in every statement that names its ids keeps the planner on the
        # primary key. Given a bare status test, SQLite walks the status index over the whole
        # backlog; PostgreSQL, once ANALYZE has seen few events `processing` (any quiet hour),
        # starts from the status index and runs the id list's locking subquery again for
        # every event in that state: in a burst of 10,000 new incidents a settle of 200
        # took 20 s (3,200 processing x 200 rows locked), and the drain fell from 840 to 150
        # events/s.
        status = events.c.status + ""
        self._mark_queued = (
            update(events)
            # SKIP LOCKED: a row a worker holds is already past `received`.
            .where(_locked(listed, dialect, skip=True), status == Status.RECEIVED)
            .values(status=Status.QUEUED, **moved)
        )
        self._requeue_soon = (
            update(events)
            .where(by_ids, status == Status.QUEUED)
            .values(status=Status.RECEIVED, **moved)
        )
        claimable = or_(
            status.in_([Status.RECEIVED, Status.QUEUED]),
            and_(status == Status.PROCESSING, events.c.deadline < bindparam("p_now")),
        )
        claim = update(events).where(by_ids, claimable)
        took = (events.c.id, events.c.provider, events.c.type, events.c.runs, events.c.status)
        runs = {"runs": events.c.runs + 1, "claimed_by": bindparam("p_claimer")}
        self._claim_all = claim.values(status=Status.PROCESSING, **runs, **moved)
        self._claim_all = self._claim_all.returning(*took)
        # An event no workflow wants goes straight to `ignored` in the same UPDATE: most
        # webhooks need nothing done, and one row version per event is half the writes.
        kind = events.c.provider + ":" + events.c.type
        routed = one_of(kind, "p_routed", dialect)
        self._claim_routed = claim.values(
            status=case((routed, Status.PROCESSING), else_=Status.IGNORED),
            **runs,
            updated_at=bindparam("p_now"),
            deadline=case((routed, bindparam("p_deadline")), else_=None),
        ).returning(*took)
        self._release = (
            update(events)
            .where(events.c.status == Status.PROCESSING)
            .where(events.c.claimed_by == bindparam("p_claimer"))
            .values(deadline=bindparam("p_now"), updated_at=bindparam("p_now"))
        )
        self._settle = (
            update(events)
            .where(by_ids, status == Status.PROCESSING)
            .values(status=bindparam("p_status"), last_error=bindparam("p_error"), **moved)
        )
        self._sweep = {
            by_deadline: self._sweep_statement(by_deadline, moved) for by_deadline in (True, False)
        }

    def _sweep_statement(self, by_deadline: bool, moved: dict[str, Any]) -> Any:
        cutoff: Any = bindparam("p_cutoff")
        due = events.c.deadline < cutoff if by_deadline else events.c.updated_at < cutoff
        overdue = and_(due, events.c.status.in_(ACTIVE))
        limit = bindparam("p_limit", type_=Integer)
        dialect = self.engine.dialect.name
        return (
            update(events)
            .where(_locked(overdue, dialect, skip=True, limit=limit), overdue)
            .values(status=Status.RECEIVED, **moved)
            .returning(events.c.id)
        )

    def insert(self, batch: Sequence[NewEvent], status: Status = Status.RECEIVED) -> list[Stored]:
        """Store a batch in one transaction; the answer for each item, in order.

        `queued` is for an in-memory queue, which cannot fail apart from this process: the
        events go straight to it after the commit, and `recover` takes them back at start."""
        plan = self.plan_insert(batch, status)
        with write(self.engine) as conn:
            inserted = self._insert(conn, plan)
            existing = self._insert.existing(conn, plan.missing(inserted))
        return plan.answers(inserted, existing)

    def plan_insert(self, batch: Sequence[NewEvent], status: Status) -> InsertPlan:
        """The rows a batch becomes; shared by this sync path and the ingress's async one."""
        now = utcnow()
        wait = self.timing.received_s if status == Status.RECEIVED else self.timing.queued_s
        return InsertPlan.of(batch, status, now, now + timedelta(seconds=wait))

    def mark_queued(self, ids: Sequence[str]) -> None:
        now = utcnow()
        deadline = now + timedelta(seconds=self.timing.queued_s)
        with write(self.engine) as conn:
            conn.execute(self._mark_queued, {"p_ids": ids, "p_now": now, "p_deadline": deadline})

    def requeue_soon(self, ids: Sequence[str]) -> None:
        """The hand-off of these `queued` events failed: let the sweeper have them soon."""
        now = utcnow()
        deadline = now + timedelta(seconds=self.timing.received_s)
        with write(self.engine) as conn:
            conn.execute(self._requeue_soon, {"p_ids": ids, "p_now": now, "p_deadline": deadline})

    def claim(self, ids: Sequence[str], routed: Collection[str] | None = None) -> list[Claimed]:
        """Take events for processing. An event already settled, or held by a live worker,
        is not returned: redelivered and duplicate messages become no-ops here.

        With `routed` ("provider:type" kinds that have workflows), every other event is
        marked `ignored` by the same statement and not returned."""
        now = utcnow()
        deadline = now + timedelta(seconds=self.timing.lease_s)
        params: dict[str, Any] = {
            "p_ids": ids,
            "p_now": now,
            "p_deadline": deadline,
            "p_claimer": self.claimer,
        }
        stmt = self._claim_all
        if routed is not None:
            stmt, params["p_routed"] = self._claim_routed, list(routed)
        with write(self.engine) as conn:
            rows = conn.execute(stmt, params).all()
        return [Claimed(*row[:4]) for row in rows if row[4] == Status.PROCESSING]

    def release_claims(self, claimer: str) -> int:
        """End the leases of the events `claimer` holds: its process is gone (`hub worker`
        saw it exit), so they are claimable now, by the next message or sweep that names them.
        A claim its dead process had settled in time is no longer `processing`: untouched.
        The dead process's backend may still hold some of these rows (it learns that its
        client is gone only when it next reads from it): past 2 s waiting, this gives up
        and the leases run out as they would have."""
        now = utcnow()
        with write(self.engine) as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            params = {"p_claimer": claimer, "p_now": now}
            return conn.execute(self._release, params).rowcount

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
        params = self._settle_params(ids, status, error, retry_at)
        rows = [{"event_id": eid, **_attempt_row(rec)} for eid, rec in records]
        with write(self.engine) as conn:
            if ids:
                conn.execute(self._settle, params)
            if rows:
                insert_rows(conn, attempts, rows)

    def _settle_params(
        self,
        ids: Sequence[str],
        status: Status,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> dict[str, Any]:
        deadline = None
        if retry_at is not None:
            deadline = retry_at + timedelta(seconds=self.timing.queued_s)
        return {
            "p_ids": ids,
            "p_status": status,
            "p_error": error,
            "p_now": utcnow(),
            "p_deadline": deadline,
        }

    def sweep(self, limit: int = 1000, *, untouched_since: datetime | None = None) -> list[str]:
        """Claim active events whose deadline passed and put them back to `received`, as if
        just stored: the caller enqueues them, and if that fails they come round again soon.

        The deadline test is repeated in the outer UPDATE so that concurrent sweepers in
        other processes never take the same event twice. `untouched_since` ignores deadlines
        and takes every active event not changed since then: for an embedded hub starting up,
        whose in-memory queue died with the previous process."""
        now = utcnow()
        params = {
            "p_cutoff": untouched_since or now,
            "p_limit": limit,
            "p_now": now,
            "p_deadline": now + timedelta(seconds=self.timing.received_s),
        }
        stmt = self._sweep[untouched_since is None]
        with write(self.engine) as conn:
            return [row[0] for row in conn.execute(stmt, params)]


def _locked(condition: Any, dialect: str, *, skip: bool, limit: Any = None) -> Any:
    """`events.id` is one of the ids `condition` selects, locked in id order (PostgreSQL;
    SQLite has one writer anyway).

    Two UPDATEs with `id IN (...)` lock rows in whatever order the plan visits them and can
    deadlock each other; locking through an ordered SELECT ... FOR UPDATE cannot. Taken in a
    MATERIALIZED CTE, run once whatever the plan: as a plain subquery the planner may run it
    again for rows the outer condition matched, and each run locks and returns more (a sweep
    with LIMIT 500 over 1,000 overdue events moved 958).

    The UPDATE finds the locked ids as one array (`id = ANY(...)`, an InitPlan), so it
    reads them through the primary key. Joined to the CTE (`id IN (SELECT ...)`), the planner
    chose a hash join over every row of a table of some tens of thousands of events: a claim
    of 200 took 13.7 ms against 1.8 (`EXPLAIN ANALYZE`, 20,000 events).

    A plain subquery on SQLite, which runs it once. Python's sqlite3 opens its implicit
    transaction only for a statement that starts with INSERT, UPDATE, DELETE or REPLACE:
    one that starts with WITH ran on its own and committed at once, so a settle's status
    was seen (and kept, had its attempts failed) without the attempts written after it
    (tests/test_store_atomic.py)."""
    stmt = select(events.c.id).where(condition).order_by(events.c.id).limit(limit)
    if dialect != "postgresql":
        return events.c.id.in_(stmt.scalar_subquery())
    taken = stmt.with_for_update(skip_locked=skip).cte("locked")
    taken = taken.prefix_with("MATERIALIZED")
    ids = select(func.array_agg(taken.c.id)).scalar_subquery()
    return events.c.id == any_(cast(ids, ARRAY(events.c.id.type)))


def _attempt_row(rec: AttemptRecord) -> dict[str, Any]:
    return {
        "workflow": rec.workflow,
        "started_at": rec.started_at,
        "finished_at": rec.finished_at,
        "outcome": rec.outcome,
        "error": rec.error,
        "traceback": rec.traceback,
        "detail": rec.detail,
        "rule": rec.rule,
    }
