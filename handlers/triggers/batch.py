"""A batch of decided triggers applied in one transaction, as the router claims them.

Applied one by one, each event was its own transaction: a burst of failed payments on one
key was thousands of commits (fsyncs on PostgreSQL, turns at SQLite's single writer). Here a
batch is one commit, and the occurrences that arrive for an incident already open collapse
into one update (count += n, last seen, latest summary), one link row each, and one
re-armed message update. Everything else (opens, resolves, versioned changes) goes through
the same `apply_in` as a single event, in the batch's order for its key, so the watermark and
the open/resolve order per key are exactly what one-by-one application gives.

The live incidents are read, not locked: a row is locked from the occurrences' UPDATE to the
commit, so workers on the same few keys overlap instead of queueing behind each other's whole
batch. A batch that lost a race (another worker opened one of its keys, or resolved one of
its incidents, meanwhile) is rolled back and run once more as a batch. If anything else
raises (one bad event), or the second run fails too, each event is applied alone, in its own
transaction: a failing event fails alone."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from handlers.context import WorkflowContext
from handlers.triggers.apply import (
    OCCURRENCE,
    apply_in,
    apply_trigger,
    incident_events,
    log_outcome,
)
from handlers.triggers.model import Change, Trigger
from handlers.triggers.occurrences import Pending, add_statement
from handlers.triggers.opens import Openings
from hub.events.models import utcnow
from hub.incidents import changes as incident_changes
from hub.incidents.changes import Outcome, incidents, lock_in_key_order, rearm_many
from hub.runtime.db import write
from hub.runtime.logs import bind
from hub.runtime.rows import insert_rows, one_of

log = logging.getLogger(__name__)


def apply_triggers(
    ctx: WorkflowContext,
    items: Sequence[tuple[str, Trigger]],
    workflows: Sequence[str] | None = None,
) -> list[Outcome | Exception]:
    """Apply (event id, trigger) pairs; the outcome of each, or the exception it raised.
    `workflows`: the name of the workflow that decided each, bound on its outcome's line."""
    if not items:
        return []
    names: Sequence[str | None] = workflows or [None] * len(items)
    # Keys in a fixed order (stable: a key's own events keep theirs), so two workers' batches
    # lock incident rows in the same order rather than into a deadlock.
    ordered = sorted(range(len(items)), key=lambda i: items[i][1].key)
    for retry in (True, False):
        try:
            with write(ctx.engine) as conn:
                outcomes, deliver = _apply_all(conn, ctx, [items[i] for i in ordered])
            break
        except (Raced, IntegrityError) as exc:
            # Another worker opened (or resolved) one of these keys first: a burst on a new
            # key meets every worker's first batch at once. Once more, as a batch, sees it.
            if retry:
                log.info("a batch of %d changes again: %s", len(items), type(exc).__name__)
                continue
            return _one_by_one(ctx, items, names, exc)
        except Exception as exc:
            return _one_by_one(ctx, items, names, exc)
    result: list[Outcome | Exception] = [outcomes[0]] * len(items)
    debug = logging.getLogger(log_outcome.__module__).isEnabledFor(logging.DEBUG)
    for position, i in enumerate(ordered):
        outcome = result[i] = outcomes[position]
        if outcome.message != OCCURRENCE or debug:  # an occurrence's line is at DEBUG
            with bind(event_id=items[i][0], workflow=names[i]):
                log_outcome(items[i][0], items[i][1], outcome)
    added = [o.incident_id for o in outcomes if o.changed and o.message == OCCURRENCE]
    if added:
        log.info("%d occurrences added to %d incidents in one batch", len(added), len(set(added)))
    incident_changes.schedule_deliveries(ctx.queue, deliver)
    return result


def _one_by_one(
    ctx: WorkflowContext,
    items: Sequence[tuple[str, Trigger]],
    names: Sequence[str | None],
    exc: Exception,
) -> list[Outcome | Exception]:
    log.info("a batch of %d changes applied one by one: %s", len(items), type(exc).__name__)
    return [_alone(ctx, *item, name) for item, name in zip(items, names, strict=True)]


def _alone(
    ctx: WorkflowContext, event_id: str, trigger: Trigger, workflow: str | None
) -> Outcome | Exception:
    try:
        with bind(event_id=event_id, workflow=workflow):
            return apply_trigger(ctx, event_id, trigger)
    except Exception as exc:
        return exc


def _apply_all(
    conn: Connection, ctx: WorkflowContext, items: Sequence[tuple[str, Trigger]]
) -> tuple[list[Outcome], set[str]]:
    """`items` sorted by key: each key's events are together, in their order."""
    batch = _Batch(conn, ctx, items)
    start = 0
    while start < len(items):
        end = start + 1
        if _is_occurrence(items[start][1]):
            key = items[start][1].key
            while end < len(items) and items[end][1].key == key and _is_occurrence(items[end][1]):
                end += 1
            batch.occurrences(items[start:end])
        else:
            batch.one(*items[start])
        start = end
    batch.finish()
    return batch.outcomes, batch.deliver


def _is_occurrence(trigger: Trigger) -> bool:
    """An unversioned open: it adds to the key's live incident, or opens one."""
    return trigger.change == Change.OPEN and trigger.version is None


class Raced(RuntimeError):
    """Another worker resolved an incident this batch was adding to: run the batch again."""


class _Batch:
    def __init__(
        self, conn: Connection, ctx: WorkflowContext, items: Sequence[tuple[str, Trigger]]
    ) -> None:
        self.conn = conn
        self.ctx = ctx
        # Events applied before (a redelivery, a replay): each says so and changes nothing.
        sql = _sql(conn.dialect.name)
        seen = conn.execute(sql.seen, {"p_ids": [event_id for event_id, _ in items]})
        self.applied: dict[str, str] = {row.event_id: row.incident_id for row in seen}
        self.openings = Openings(conn, items, self.applied)  # new incidents, written together
        # The live incidents of the keys whose first change here is an occurrence, found in
        # one statement (not locked, see `_sql`); their occurrences are written at the end.
        firsts = {t.key for i, (_, t) in enumerate(items) if i == 0 or items[i - 1][1].key != t.key}
        # One pass, not one per key: a burst of new incidents is a key per event.
        occurring = {t.key for _, t in items if _is_occurrence(t)}
        keys = [k for k in firsts if k in occurring]
        self.live: dict[str, Any] = {}
        if keys:
            self.live = {r.key: r for r in conn.execute(sql.live, {"p_keys": keys})}
        self.adds: dict[str, Pending] = {}  # by incident id, written at the end
        self.outcomes: list[Outcome] = []
        self.deliver: set[str] = set()  # incidents that owe Slack or GitHub a call
        self.rearm: dict[str, str] = {}  # incident id -> the last event that changed it
        self.links: list[dict[str, Any]] = []  # occurrences' links, inserted together

    def one(self, event_id: str, trigger: Trigger) -> None:
        if self._already(event_id):
            return
        opened = self.openings.open(self.ctx, event_id, trigger)  # locks no row
        if opened is None:
            # This change sees the key as one by one would (its occurrences before it
            # written), and takes its incident's row after those of the keys before it:
            # every occurrence deferred so far is written first, rows locked in key order.
            self._flush_all()
            self.live.pop(trigger.key, None)
        outcome = opened or apply_in(self.conn, self.ctx, event_id, trigger)
        self.outcomes.append(outcome)
        if outcome.incident_id is not None:
            self.applied[event_id] = outcome.incident_id
            if outcome.deliver:
                self.deliver.add(outcome.incident_id)

    def occurrences(self, run: Sequence[tuple[str, Trigger]]) -> None:
        """Consecutive occurrences of one key: added to its live incident, or, with none
        live, the first opens it and the rest are added to the new one."""
        pending: Pending = []
        for event_id, trigger in run:
            if not self._already(event_id):
                pending.append((event_id, trigger, len(self.outcomes)))
                self.outcomes.append(Outcome(None, True, None, OCCURRENCE))  # filled below
        if not pending:
            return
        key = pending[0][1].key
        live = self.live.get(key)
        if live is None:
            # Not known live at the start, or changed since: as one event would find it.
            live = self.conn.execute(*add_statement(pending, key=key)).first()
            if live is None:
                incident_id = self._open(*pending.pop(0))
                if not pending:
                    return
                live = self.conn.execute(*add_statement(pending, incident_id=incident_id)).one()
            self._added(live, pending, write=False)
        else:
            self._added(live, pending, write=True)

    def _added(self, live: Any, pending: Pending, *, write: bool) -> None:
        for event_id, _, position in pending:
            self.outcomes[position] = Outcome(live.id, True, live.status, OCCURRENCE)
            self.applied[event_id] = live.id
        self.rearm[live.id] = pending[-1][0]
        if write:
            self.adds.setdefault(live.id, []).extend(pending)
        else:
            self._link(live.id, pending)

    def _open(self, event_id: str, trigger: Trigger, position: int) -> str:
        """No incident is live for the key: this occurrence opens one (an unversioned open
        is never stale, so it does)."""
        opened = apply_in(self.conn, self.ctx, event_id, trigger)
        if opened.incident_id is None:
            raise RuntimeError(f"{event_id} opened no incident for {trigger.key}")
        self.outcomes[position] = opened
        self.applied[event_id] = opened.incident_id
        if opened.deliver:
            self.deliver.add(opened.incident_id)
        return opened.incident_id

    def _flush_all(self) -> None:
        for incident_id, pending in self.adds.items():
            if self.conn.execute(*add_statement(pending, incident_id=incident_id)).first() is None:
                raise Raced(f"{incident_id} was resolved while this batch ran")
            self._link(incident_id, pending)
        self.adds.clear()

    def finish(self) -> None:
        """The new incidents (`Openings`), then the deferred occurrences: one UPDATE per
        incident, sent as one executemany per shape of statement, their links in one insert,
        their message updates re-armed."""
        self.openings.write(self.conn)
        shapes: dict[Any, list[dict[str, Any]]] = {}
        for incident_id, pending in self.adds.items():
            stmt, params = add_statement(pending, incident_id=incident_id, returning=False)
            shapes.setdefault(stmt, []).append(params)
            self._link(incident_id, pending)
        # The links first: they lock nothing another batch wants. The incidents' rows are
        # locked from their UPDATE to the commit, not from the batch's first read.
        if self.links:
            insert_rows(self.conn, incident_events, self.links)
        if len(shapes) > 1:  # one executemany per shape would take rows out of key order
            lock_in_key_order(self.conn, list(self.adds))
        for stmt, rows in shapes.items():
            if self.conn.execute(stmt, rows).rowcount != len(rows):
                raise Raced("an incident of this batch was resolved while it ran")
        if self.rearm:
            self.deliver |= rearm_many(self.conn, "slack.update", self.rearm)

    def _link(self, incident_id: str, pending: Pending) -> None:
        now = utcnow()
        self.links += [
            {"event_id": e, "incident_id": incident_id, "at": now} for e, _, _ in pending
        ]

    def _already(self, event_id: str) -> bool:
        incident_id = self.applied.get(event_id)
        if incident_id is None:
            return False
        self.outcomes.append(Outcome(incident_id, False, None, "event already applied"))
        return True


@dataclass(frozen=True)
class _Statements:
    seen: Any
    live: Any


@functools.cache
def _sql(dialect: str) -> _Statements:
    return _Statements(
        seen=select(incident_events.c.event_id, incident_events.c.incident_id).where(
            one_of(incident_events.c.event_id, "p_ids", dialect)
        ),
        # Read, not locked (FOR UPDATE here serialised every batch on a few keys behind
        # each other's whole transaction: 16 threads waiting on 5 rows, measured). The
        # occurrences' UPDATE re-checks `status != resolved` under the row lock at the end;
        # a batch that loses that race rolls back and runs again (apply_triggers).
        live=select(incidents).where(
            one_of(incidents.c.key, "p_keys", dialect),
            incidents.c.status != "resolved",
        ),
    )
