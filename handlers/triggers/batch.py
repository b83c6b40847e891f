"""A batch of decided triggers applied in one transaction, as the router claims them.

Applied one by one, each event was its own transaction: a burst of failed payments on one
key was thousands of commits (fsyncs on PostgreSQL, turns at SQLite's single writer). Here a
batch is one commit, and the occurrences that arrive for an incident already open collapse
into one update (count += n, last seen, latest summary), one link row each, and one
re-armed message update. Everything else (opens, resolves, versioned changes) goes through
the same `apply_in` as a single event, in the batch's order for its key, so the watermark and
the open/resolve order per key are exactly what one-by-one application gives.

If anything in the batch raises (one bad event, or a race with another worker opening the
same key), the transaction is rolled back and each event is applied alone, in its own
transaction: a failing event fails alone."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from handlers.context import WorkflowContext
from handlers.triggers import order
from handlers.triggers.apply import (
    OCCURRENCE,
    apply_in,
    apply_trigger,
    incident_events,
    log_outcome,
)
from handlers.triggers.model import Change, Trigger
from hub.events.models import JSONType, utcnow
from hub.incidents import changes as incident_changes
from hub.incidents.changes import Outcome, incidents, rearm
from hub.runtime.db import write
from hub.runtime.logs import bind

log = logging.getLogger(__name__)


def apply_triggers(
    ctx: WorkflowContext, items: Sequence[tuple[str, Trigger]]
) -> list[Outcome | Exception]:
    """Apply (event id, trigger) pairs; the outcome of each, or the exception it raised."""
    if not items:
        return []
    # Keys in a fixed order (stable: a key's own events keep theirs), so two workers' batches
    # lock incident rows in the same order rather than into a deadlock.
    ordered = sorted(range(len(items)), key=lambda i: items[i][1].key)
    try:
        with write(ctx.engine) as conn:
            outcomes, deliver = _apply_all(conn, ctx, [items[i] for i in ordered])
    except Exception as exc:
        log.info("a batch of %d changes applied one by one: %s", len(items), type(exc).__name__)
        return [_alone(ctx, event_id, trigger) for event_id, trigger in items]
    result: list[Outcome | Exception] = [outcomes[0]] * len(items)
    for position, i in enumerate(ordered):
        result[i] = outcomes[position]
        with bind(event_id=items[i][0]):
            log_outcome(items[i][0], items[i][1], outcomes[position])
    for incident_id in deliver:
        incident_changes.schedule_delivery(ctx.queue, incident_id)
    return result


def _alone(ctx: WorkflowContext, event_id: str, trigger: Trigger) -> Outcome | Exception:
    try:
        return apply_trigger(ctx, event_id, trigger)
    except Exception as exc:
        return exc


@dataclass
class _Occurrences:
    """Occurrences waiting to be written to one live incident."""

    row: Any
    events: list[str] = field(default_factory=list)
    summary: str | None = None
    links: list[dict[str, str]] | None = None

    def add(self, event_id: str, trigger: Trigger) -> None:
        self.events.append(event_id)
        if trigger.summary:  # as one by one: the latest summary, and the latest links with one
            self.summary = trigger.summary
            if trigger.links:
                self.links = [{"label": item.label, "url": item.url} for item in trigger.links]

    def flush(self, conn: Connection) -> bool:
        """One update for all of them; True if a message update was newly owed."""
        sql = _sql()
        now = utcnow()
        params: dict[str, Any] = {"p_id": self.row.id, "p_now": now, "p_n": len(self.events)}
        if self.summary is None:
            conn.execute(sql.counted, params)
        elif self.links is None:
            conn.execute(sql.summary, params | {"p_summary": self.summary})
        else:
            conn.execute(sql.latest, params | {"p_summary": self.summary, "p_links": self.links})
        order.link_many(conn, self.row.id, self.events)
        last = self.events[-1]
        return rearm(conn, self.row.id, "slack.update", f"slack.update:{self.row.id}", cause=last)


def _apply_all(
    conn: Connection, ctx: WorkflowContext, items: Sequence[tuple[str, Trigger]]
) -> tuple[list[Outcome], set[str]]:
    batch = _Batch(conn, ctx, [event_id for event_id, _ in items])
    outcomes = [batch.apply(event_id, trigger) for event_id, trigger in items]
    batch.flush_all()
    return outcomes, batch.deliver


class _Batch:
    def __init__(self, conn: Connection, ctx: WorkflowContext, event_ids: list[str]) -> None:
        self.conn = conn
        self.ctx = ctx
        # Events applied before (a redelivery, a replay): each says so and changes nothing.
        seen = conn.execute(_sql().seen, {"p_ids": event_ids})
        self.applied: dict[str, str] = {row.event_id: row.incident_id for row in seen}
        self.pending: dict[str, _Occurrences] = {}  # by key
        self.deliver: set[str] = set()  # incidents that owe Slack or GitHub a call

    def apply(self, event_id: str, trigger: Trigger) -> Outcome:
        if (incident_id := self.applied.get(event_id)) is not None:
            return Outcome(incident_id, False, None, "event already applied")
        if trigger.change == Change.OPEN and trigger.version is None:
            group = self._occurrences(trigger.key)
            if group is not None:
                group.add(event_id, trigger)
                self.applied[event_id] = group.row.id
                return Outcome(group.row.id, True, group.row.status, OCCURRENCE)
        # Anything else about this key comes after the occurrences before it.
        self._flush(trigger.key)
        outcome = apply_in(self.conn, self.ctx, event_id, trigger)
        if outcome.incident_id is not None:
            self.applied[event_id] = outcome.incident_id
            if outcome.deliver:
                self.deliver.add(outcome.incident_id)
        return outcome

    def flush_all(self) -> None:
        for key in list(self.pending):
            self._flush(key)

    def _occurrences(self, key: str) -> _Occurrences | None:
        """The pending occurrences of `key`'s live incident; None if none is live."""
        group = self.pending.get(key)
        if group is None:
            live = self.conn.execute(_sql().live, {"p_key": key}).first()
            if live is not None:
                group = self.pending[key] = _Occurrences(live)
        return group

    def _flush(self, key: str) -> None:
        group = self.pending.pop(key, None)
        if group is not None and group.flush(self.conn):
            self.deliver.add(group.row.id)


@dataclass(frozen=True)
class _Statements:
    seen: Any
    live: Any
    counted: Any
    summary: Any
    latest: Any


@functools.cache
def _sql() -> _Statements:
    occurrences = update(incidents).where(incidents.c.id == bindparam("p_id"))
    counted = {
        "occurrences": incidents.c.occurrences + bindparam("p_n"),
        "last_seen": bindparam("p_now"),
        "updated_at": bindparam("p_now"),
        "revision": incidents.c.revision + 1,
    }
    live = (incidents.c.key == bindparam("p_key")) & (incidents.c.status != "resolved")
    links = bindparam("p_links", type_=JSONType)
    return _Statements(
        seen=select(incident_events.c.event_id, incident_events.c.incident_id).where(
            incident_events.c.event_id.in_(bindparam("p_ids", expanding=True))
        ),
        live=select(incidents).where(live).with_for_update(),
        counted=occurrences.values(**counted),
        summary=occurrences.values(**counted, summary=bindparam("p_summary")),
        latest=occurrences.values(**counted, summary=bindparam("p_summary"), links=links),
    )
