"""Incident state changes and the outbox they write, shared by the workers (buttons,
commands, events that resolve) and the admin API (ack and resolve by an admin).

Every change is keyed by what caused it (an event id, a button press, an admin request):
applying the same cause twice finds it already recorded and changes nothing, which is what
makes every workflow safe to retry and to replay. The calls themselves are made later by the
delivery actor, which this module asks for by name."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, update

from hub.events.models import utcnow
from hub.incidents.models import Effect, EffectStatus, Incident, IncidentStatus, TimelineEntry
from hub.runtime.db import write
from hub.runtime.queue import DELIVER_ACTOR, EventQueue
from hub.runtime.rows import one_of

log = logging.getLogger(__name__)

incidents: Table = Incident.__table__  # type: ignore[attr-defined]
timeline: Table = TimelineEntry.__table__  # type: ignore[attr-defined]
effects: Table = Effect.__table__  # type: ignore[attr-defined]

# What each action does to the status, and from which statuses it may start.
TRANSITIONS: dict[str, tuple[IncidentStatus, frozenset[str]]] = {
    "acknowledged": (IncidentStatus.ACKNOWLEDGED, frozenset({IncidentStatus.OPEN})),
    "resolved": (
        IncidentStatus.RESOLVED,
        frozenset({IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED}),
    ),
    "reopened": (IncidentStatus.OPEN, frozenset({IncidentStatus.RESOLVED})),
}
WORDS = {"acknowledged": "Acknowledged", "resolved": "Resolved", "reopened": "Reopened"}
# What people press or type (Slack buttons, `/incident`, `hub incidents`, the admin API) ->
# the action it asks for.
VERBS = {"ack": "acknowledged", "acknowledge": "acknowledged", "resolve": "resolved",
         "reopen": "reopened"}  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    incident_id: str | None
    changed: bool
    status: str | None = None
    message: str = ""
    # Some effect became pending: a delivery must be asked for. An occurrence that finds the
    # message update already pending asks for nothing (the pending one will show it), so a
    # burst of events is a handful of delivery messages, not one each.
    deliver: bool = False
    # The change was older than what the key already reflected: recorded, nothing changed.
    stale: bool = False


@dataclass(frozen=True)
class StatusChange:
    action: str  # a key of TRANSITIONS
    actor: str  # who, as the timeline and the thread show it
    cause: str  # what asked (an event id, an admin request): applied once
    note: str = ""


def change_status(
    engine: Engine, queue: EventQueue, incident_id: str, change: StatusChange, *, github: bool
) -> Outcome:
    """Acknowledge, resolve or reopen, as a button, a command or an admin would."""
    with write(engine) as conn:
        row = locked(conn, incidents.c.id == incident_id)
        if row is None:
            return Outcome(None, False, None, f"no incident {incident_id}")
        outcome = transition(conn, row, change, github=github)
    if outcome.deliver:
        schedule_delivery(queue, incident_id)
    return outcome


# Incidents per delivery message: a burst that opens many (a batch of CI failures and
# disputes) is leased and released in one transaction per message instead of one each,
# while a message still holds few enough for the workers' threads to share a burst. 20, not
# 10: a routing batch at 20% routed opens ~17, and one message instead of two took 12-14%
# less worker CPU per incident on PostgreSQL, 5-6% on SQLite (in-process, batches chosen at
# random; docs/benchmarks.md, 2026-12-04 evening). Slack's one post a second per channel,
# not the calls one after the other, sets when a burst's last post goes out.
DELIVERY_BATCH = 20


def schedule_delivery(
    queue: EventQueue, incident: str | list[str] | None, delay_s: float = 0
) -> None:
    """A delivery message for one incident, several (`schedule_deliveries`), or None."""
    try:
        delay = int(delay_s * 1000) or None
        queue.send_actor(DELIVER_ACTOR, (incident,), delay_ms=delay)
    except Exception as exc:  # the outbox keeps the work; housekeeping sends it again
        log.warning("could not schedule delivery for %s: %s", incident, exc)


def schedule_deliveries(queue: EventQueue, incident_ids: Iterable[str | None]) -> None:
    """Delivery of these incidents' effects, several incidents to a message."""
    wanted = set(incident_ids)
    if None in wanted:  # effects of no incident go on their own
        schedule_delivery(queue, None)
    ids = sorted(i for i in wanted if i is not None)
    for start in range(0, len(ids), DELIVERY_BATCH):
        chunk = ids[start : start + DELIVERY_BATCH]
        schedule_delivery(queue, chunk if len(chunk) > 1 else chunk[0])


def locked(conn: Connection, condition: Any) -> Any:
    # FOR NO KEY UPDATE on PostgreSQL, the lock an UPDATE of the row takes: a plain FOR UPDATE
    # also waits on every insert that references the incident (a link, a timeline line:
    # their foreign key checks) and joined them in deadlocks. SQLite has one writer anyway.
    stmt = select(incidents).where(condition).with_for_update(key_share=True)
    return conn.execute(stmt).first()


def key_ordered(*where: Any) -> Any:
    """The ids of the incidents `where` selects, locked in the order of their keys (FOR NO KEY
    UPDATE on PostgreSQL; SQLite has one writer). Every transaction that changes several
    incidents takes them in this order, the router's batches as the deliveries' leases: a
    lease that took them as they lay in the table met the router in deadlocks, each costing
    both a second and setting the router's batch applying event by event (measured: 19 in a
    4-process drain of failed payments on 5 keys, 1,409 events/s against 4,751 with one).
    Locked by a statement of their own: an UPDATE with this as its subquery re-locked its
    rows behind their waiters (more deadlocks)."""
    order = (incidents.c.key, incidents.c.id)
    return select(incidents.c.id).where(*where).order_by(*order).with_for_update(key_share=True)


def lock_in_key_order(conn: Connection, incident_ids: list[str]) -> None:
    """Lock these incidents' rows in key order (`key_ordered`), before statements that change
    them in another order; on PostgreSQL only."""
    if incident_ids and conn.dialect.name == "postgresql":
        conn.execute(_key_ordered_ids(), {"p_ids": incident_ids})


@functools.cache
def _key_ordered_ids() -> Any:
    return key_ordered(one_of(incidents.c.id, "p_ids", "postgresql"))


def transition(conn: Connection, row: Any, change: StatusChange, *, github: bool) -> Outcome:
    action, actor, note = change.action, change.actor, change.note
    target, allowed = TRANSITIONS[action]
    dedupe = f"{change.cause}:{action}"
    if conn.execute(select(timeline.c.id).where(timeline.c.dedupe == dedupe)).first():
        return Outcome(row.id, False, row.status, "already applied")
    if row.status not in allowed:
        who = row.resolved_by if row.status == IncidentStatus.RESOLVED else row.acknowledged_by
        return Outcome(
            row.id, False, row.status, f"already {row.status}" + (f" by {who}" if who else "")
        )
    now = utcnow()
    values: dict[str, Any] = {"status": target, "updated_at": now, "revision": row.revision + 1}
    if action == "acknowledged":
        values["acknowledged_by"] = actor
    elif action == "resolved":
        values |= {"resolved_by": actor, "resolved_at": now}
    else:
        values |= {"resolved_by": None, "resolved_at": None, "acknowledged_by": None}
    conn.execute(update(incidents).where(incidents.c.id == row.id).values(**values))
    entry = record(conn, row.id, actor=actor, action=action, detail=note, dedupe=dedupe)
    line = f"{WORDS[action]} by {actor}" + (f": {note}" if note else "")
    cause = cause_event(change.cause)
    rearm(conn, row.id, "slack.update", f"slack.update:{row.id}", cause=cause)
    owe(conn, row.id, "slack.reply", f"slack.reply:{entry}", payload={"text": line}, cause=cause)
    for channel in (getattr(row, "channels", None) or [])[1:]:  # the thread in each channel
        owe(conn, row.id, "slack.reply", f"slack.reply:{entry}:{channel}",
            payload={"text": line, "channel": channel}, cause=cause)  # fmt: skip
    if github:
        body = {"body": line}
        owe(conn, row.id, "github.comment", f"github.comment:{entry}", payload=body, cause=cause)
        if action in ("resolved", "reopened"):
            state = {"state": "closed" if action == "resolved" else "open"}
            owe(conn, row.id, "github.state", f"github.state:{entry}", payload=state, cause=cause)
    return Outcome(row.id, True, target, line, deliver=True)


def cause_event(cause: str) -> str | None:
    """The event behind a cause (`evt_…` or `evt_…:inc_…` for a button), if there is one."""
    head = cause.partition(":")[0]
    return head if head.startswith("evt_") else None


def record(
    conn: Connection, incident_id: str, *, actor: str, action: str, detail: str, dedupe: str
) -> int:
    row = timeline_row(incident_id, actor=actor, action=action, detail=detail, dedupe=dedupe)
    return int(conn.execute(insert(timeline).returning(timeline.c.id), row).scalar_one())


def timeline_row(
    incident_id: str, *, actor: str, action: str, detail: str, dedupe: str
) -> dict[str, Any]:
    """A timeline entry as `record` writes it, for a caller that inserts many together."""
    return {
        "incident_id": incident_id,
        "at": utcnow(),
        "actor": actor[:200],
        "action": action,
        "detail": detail,
        "dedupe": dedupe[:200],
    }


def owe(
    conn: Connection,
    incident_id: str | None,
    kind: str,
    dedupe: str,
    *,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
    cause: str | None = None,
) -> None:
    """Record a side effect to perform after the commit. `dedupe` names its meaning: a
    second insert with the same meaning fails the transaction instead of posting twice.
    `cause` is the event that owes it: if the effect dies, that event shows as failed."""
    row = effect_row(incident_id, kind, dedupe, payload=payload, not_before=not_before,
                     cause=cause)  # fmt: skip
    conn.execute(insert(effects), row)


def effect_row(
    incident_id: str | None,
    kind: str,
    dedupe: str,
    *,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
    cause: str | None = None,
) -> dict[str, Any]:
    """An effect as `owe` writes it, for a caller that inserts many together."""
    now = utcnow()
    return {
        "incident_id": incident_id,
        "kind": kind,
        "dedupe": dedupe[:200],
        "payload": payload or {},
        "status": EffectStatus.PENDING,
        "failures": 0,
        "not_before": not_before or now,
        "created_at": now,
        "updated_at": now,
        "cause_event_id": cause,
    }


def rearm(
    conn: Connection, incident_id: str, kind: str, dedupe: str, *, cause: str | None = None
) -> bool:
    """Make a reusable effect (the message update) pending again, or create it. False if
    it was pending already."""
    rearm_sql, exists_sql = _rearm_sql()
    params = {"p_dedupe": dedupe, "p_now": utcnow(), "p_cause": cause}
    if conn.execute(rearm_sql, params).rowcount:
        return True
    if conn.execute(exists_sql, params).first() is None:
        owe(conn, incident_id, kind, dedupe, cause=cause)
        return True
    return False


def rearm_many(conn: Connection, kind: str, causes: dict[str, str]) -> set[str]:
    """`rearm` for many incidents (id -> the event that owes it), in three statements
    however many: the incidents whose effect was newly owed."""
    dedupes = {f"{kind}:{incident_id}": incident_id for incident_id in causes}
    found = conn.execute(_rearm_many_sql(conn.dialect.name), {"p_dedupes": list(dedupes)})
    # Re-armed in the order of their ids, as a delivery takes effects (outbox/records.py).
    status = {row.dedupe: row.status for row in sorted(found, key=lambda row: row.id)}
    now = utcnow()
    again = [d for d in status if d in dedupes and status[d] != EffectStatus.PENDING]
    if again:
        rows = [{"p_dedupe": d, "p_now": now, "p_cause": causes[dedupes[d]]} for d in again]
        conn.execute(_rearm_sql()[0], rows)
    missing = [d for d in dedupes if d not in status]
    for dedupe in missing:
        owe(conn, dedupes[dedupe], kind, dedupe, cause=causes[dedupes[dedupe]])
    return {dedupes[d] for d in again + missing}


@functools.cache
def _rearm_many_sql(dialect: str) -> Any:
    wanted = one_of(effects.c.dedupe, "p_dedupes", dialect)
    return select(effects.c.id, effects.c.dedupe, effects.c.status).where(wanted)


@functools.cache
def _rearm_sql() -> tuple[Any, Any]:
    # Built once: every occurrence of an incident runs these, and building a statement costs
    # more Python than running it (the worker was CPU-bound on it under a burst).
    dedupe = effects.c.dedupe == bindparam("p_dedupe")
    rearm = (
        update(effects)
        .where(dedupe, effects.c.status != EffectStatus.PENDING)
        .values(
            status=EffectStatus.PENDING,
            failures=0,
            updated_at=bindparam("p_now"),
            cause_event_id=bindparam("p_cause"),
        )
    )
    return rearm, select(effects.c.id).where(dedupe)
