"""Incident state changes, each recorded with the side effects it owes, in one transaction.

Every change is keyed by what caused it (an event id, a button press, an admin request):
applying the same cause twice finds it already recorded and changes nothing, which is what
makes every workflow safe to retry and to replay."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from handlers.context import WorkflowContext
from handlers.trigger import Change, Trigger
from hub.db import write
from hub.ids import new_incident_id
from hub.incident_models import (
    Effect,
    EffectStatus,
    Incident,
    IncidentEvent,
    IncidentStatus,
    TimelineEntry,
)
from hub.models import utcnow
from hub.queue import DELIVER_ACTOR

log = logging.getLogger(__name__)

incidents: Table = Incident.__table__  # type: ignore[attr-defined]
incident_events: Table = IncidentEvent.__table__  # type: ignore[attr-defined]
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


def apply_trigger(ctx: WorkflowContext, event_id: str, trigger: Trigger) -> Outcome:
    """Open, add to or resolve the incident for `trigger.key`, once per event."""
    for attempt in (1, 2):
        try:
            with write(ctx.engine) as conn:
                outcome = _apply(conn, ctx, event_id, trigger)
            break
        except IntegrityError:
            # Another worker opened the same key (or applied the same event) concurrently:
            # the second pass sees its row and adds to it, or finds the event applied.
            if attempt == 2:
                raise
    if outcome.deliver and outcome.incident_id:
        schedule_delivery(ctx, outcome.incident_id)
    return outcome


@dataclass(frozen=True)
class StatusChange:
    action: str  # a key of TRANSITIONS
    actor: str  # who, as the timeline and the thread show it
    cause: str  # what asked (an event id, an admin request): applied once
    note: str = ""


def change_status(ctx: WorkflowContext, incident_id: str, change: StatusChange) -> Outcome:
    """Acknowledge, resolve or reopen, as a button, a command or an admin would."""
    with write(ctx.engine) as conn:
        row = _locked(conn, incidents.c.id == incident_id)
        if row is None:
            return Outcome(None, False, None, f"no incident {incident_id}")
        outcome = _transition(conn, ctx, row, change)
    if outcome.deliver:
        schedule_delivery(ctx, incident_id)
    return outcome


def schedule_delivery(ctx: WorkflowContext, incident_id: str | None, delay_s: float = 0) -> None:
    try:
        delay = int(delay_s * 1000) or None
        ctx.queue.send_actor(DELIVER_ACTOR, (incident_id,), delay_ms=delay)
    except Exception as exc:  # the outbox keeps the work; housekeeping sends it again
        log.warning("could not schedule delivery for %s: %s", incident_id, exc)


def _apply(conn: Connection, ctx: WorkflowContext, event_id: str, trigger: Trigger) -> Outcome:
    seen = select(incident_events.c.incident_id).where(incident_events.c.event_id == event_id)
    if (done := conn.execute(seen).scalar()) is not None:
        return Outcome(done, False, None, "event already applied")
    live = _locked(conn, (incidents.c.key == trigger.key) & (incidents.c.status != "resolved"))
    if trigger.change == Change.RESOLVE:
        if live is None:
            return Outcome(None, False, None, "nothing open to resolve")
        _link(conn, live.id, event_id)
        change = StatusChange("resolved", trigger.actor, event_id, trigger.note)
        return _transition(conn, ctx, live, change)
    if live is not None:
        _link(conn, live.id, event_id)
        return _add_occurrence(conn, live, trigger)
    return _open(conn, ctx, event_id, trigger)


def _locked(conn: Connection, condition: Any) -> Any:
    # FOR UPDATE on PostgreSQL; SQLite has one writer anyway (and ignores it).
    return conn.execute(select(incidents).where(condition).with_for_update()).first()


def _link(conn: Connection, incident_id: str, event_id: str) -> None:
    row = {"event_id": event_id, "incident_id": incident_id, "at": utcnow()}
    conn.execute(insert(incident_events), row)


def _add_occurrence(conn: Connection, row: Any, trigger: Trigger) -> Outcome:
    now = utcnow()
    values: dict[str, Any] = {
        "occurrences": incidents.c.occurrences + 1,
        "last_seen": now,
        "updated_at": now,
        "revision": incidents.c.revision + 1,
    }
    if trigger.summary:
        values["summary"] = trigger.summary  # the latest occurrence says most
    conn.execute(update(incidents).where(incidents.c.id == row.id).values(**values))
    # Coalesced: one pending message update, however many occurrences arrive meanwhile.
    deliver = rearm(conn, row.id, "slack.update", f"slack.update:{row.id}")
    return Outcome(row.id, True, row.status, "occurrence added", deliver)


def _open(conn: Connection, ctx: WorkflowContext, event_id: str, trigger: Trigger) -> Outcome:
    now = utcnow()
    incident_id = new_incident_id()
    conn.execute(
        insert(incidents),
        {
            "id": incident_id,
            "key": trigger.key,
            "title": trigger.title[:300],
            "severity": trigger.severity,
            "status": IncidentStatus.OPEN,
            "summary": trigger.summary,
            "links": [{"label": link.label, "url": link.url} for link in trigger.links],
            "source": trigger.key.partition(":")[0],
            "occurrences": 1,
            "first_seen": now,
            "last_seen": now,
            "updated_at": now,
            "revision": 0,
        },
    )
    _link(conn, incident_id, event_id)
    _record(conn, incident_id, actor=trigger.actor, action="opened", detail=trigger.title,
            dedupe=event_id)  # fmt: skip
    owe(conn, incident_id, "slack.post", f"slack.post:{incident_id}")
    if ctx.github is not None:
        owe(conn, incident_id, "github.issue", f"github.issue:{incident_id}")
    return Outcome(incident_id, True, IncidentStatus.OPEN, "opened", deliver=True)


def _transition(conn: Connection, ctx: WorkflowContext, row: Any, change: StatusChange) -> Outcome:
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
    entry = _record(conn, row.id, actor=actor, action=action, detail=note, dedupe=dedupe)
    line = f"{WORDS[action]} by {actor}" + (f": {note}" if note else "")
    rearm(conn, row.id, "slack.update", f"slack.update:{row.id}")
    owe(conn, row.id, "slack.reply", f"slack.reply:{entry}", payload={"text": line})
    if ctx.github is not None:
        owe(conn, row.id, "github.comment", f"github.comment:{entry}", payload={"body": line})
        if action in ("resolved", "reopened"):
            state = "closed" if action == "resolved" else "open"
            owe(conn, row.id, "github.state", f"github.state:{entry}", payload={"state": state})
    return Outcome(row.id, True, target, line, deliver=True)


def _record(
    conn: Connection, incident_id: str, *, actor: str, action: str, detail: str, dedupe: str
) -> int:
    row = {
        "incident_id": incident_id,
        "at": utcnow(),
        "actor": actor[:200],
        "action": action,
        "detail": detail,
        "dedupe": dedupe[:200],
    }
    return int(conn.execute(insert(timeline).returning(timeline.c.id), row).scalar_one())


def owe(
    conn: Connection,
    incident_id: str | None,
    kind: str,
    dedupe: str,
    *,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> None:
    """Record a side effect to perform after the commit. `dedupe` names its meaning: a
    second insert with the same meaning fails the transaction instead of posting twice."""
    now = utcnow()
    row = {
        "incident_id": incident_id,
        "kind": kind,
        "dedupe": dedupe[:200],
        "payload": payload or {},
        "status": EffectStatus.PENDING,
        "failures": 0,
        "not_before": not_before or now,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(insert(effects), row)


def rearm(conn: Connection, incident_id: str, kind: str, dedupe: str) -> bool:
    """Make a reusable effect (the message update) pending again, or create it. False if
    it was pending already."""
    stmt = (
        update(effects)
        .where(effects.c.dedupe == dedupe, effects.c.status != EffectStatus.PENDING)
        .values(status=EffectStatus.PENDING, failures=0, updated_at=utcnow())
    )
    if conn.execute(stmt).rowcount:
        return True
    exists = select(effects.c.id).where(effects.c.dedupe == dedupe)
    if conn.execute(exists).first() is None:
        owe(conn, incident_id, kind, dedupe)
        return True
    return False
