"""Which change is newer, in the provider's own order: the watermark of each grouping key.

Stripe and GitHub deliver out of order and more than once, and a replay sends old events on
purpose, so the order events are processed in says nothing about which is true now. Each
trigger that can tell carries a version from its payload (`Trigger.version`); the key's row
in `incident_keys` keeps the newest version applied and survives the incident, including a
resolve that found nothing open (a tombstone). A change at or below it is stale: it is linked
to the incident it would have touched and written on its timeline, and changes nothing else.
This is the one place that rule lives; every workflow and every replay goes through it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from handlers.triggers.model import Change, Trigger
from hub.events.ids import new_incident_id
from hub.events.models import utcnow
from hub.incidents.changes import Outcome, incidents, record
from hub.incidents.models import IncidentEvent, IncidentKey, IncidentStatus

incident_keys: Table = IncidentKey.__table__  # type: ignore[attr-defined]
incident_events: Table = IncidentEvent.__table__  # type: ignore[attr-defined]


def watermark(conn: Connection, trigger: Trigger) -> Any:
    """The key's newest applied change, locked until the transaction ends (PostgreSQL), so
    two workers holding two versions of one key decide one after the other. None: nothing
    with a version was applied to this key yet (or the trigger has no version)."""
    if trigger.version is None:
        return None
    return conn.execute(_sql().mark, {"p_key": trigger.key}).first()


def is_stale(trigger: Trigger, mark: Any) -> bool:
    return (
        mark is not None and trigger.version is not None and trigger.version <= tuple(mark.version)
    )


def advance(
    conn: Connection, trigger: Trigger, event_id: str, incident_id: str | None, mark: Any
) -> None:
    """Record `trigger` as the key's newest change. A first insert that races another
    worker's raises IntegrityError, and the caller's retry then finds this row and decides
    again, in order."""
    if trigger.version is None:
        return
    row = key_row(trigger, event_id, incident_id or (mark.incident_id if mark else None))
    if mark is None:
        conn.execute(insert(incident_keys), row)
    else:
        row.pop("key")
        conn.execute(update(incident_keys).where(incident_keys.c.key == trigger.key), row)


def key_row(trigger: Trigger, event_id: str, incident_id: str | None) -> dict[str, Any]:
    """The key's row once `trigger` is its newest change. `incident_id`: the incident the
    key last fed (a resolve that found nothing open keeps the one before)."""
    return {
        "key": trigger.key,
        "version": list(trigger.version or ()),
        "change": trigger.change.value,
        "event_id": event_id,
        "note": trigger.note or trigger.title,
        "incident_id": incident_id,
        "updated_at": utcnow(),
    }


def apply_stale(conn: Connection, event_id: str, trigger: Trigger, mark: Any) -> Outcome:
    """The event is older than what the key reflects: say so where a responder will look,
    and change nothing a responder sees (no reopen, no post, no comment)."""
    by = mark.event_id or "an earlier change"
    detail = f"superseded by {by}" + (f" ({mark.note})" if mark.note else "")
    incident_id = mark.incident_id
    if incident_id is None and trigger.change == Change.OPEN:
        # The resolve came first: keep the late open as an incident that is already
        # resolved, with both events linked, so the story is complete and nothing is live.
        incident_id = _open_resolved(conn, event_id, trigger, mark, detail)
        conn.execute(
            update(incident_keys).where(incident_keys.c.key == trigger.key),
            {"incident_id": incident_id},
        )
        return Outcome(incident_id, False, IncidentStatus.RESOLVED, f"stale: {detail}", stale=True)
    if incident_id is not None:
        link(conn, incident_id, event_id)
        what = trigger.note or trigger.title or trigger.change.value
        record(conn, incident_id, actor=trigger.actor, action="stale",
               detail=f"{what}: {detail}", dedupe=f"{event_id}:stale")  # fmt: skip
    return Outcome(incident_id, False, None, f"stale: {detail}", stale=True)


def incident_row(trigger: Trigger, status: str, now: datetime) -> dict[str, Any]:
    """A new incident for `trigger`'s key, as its first occurrence describes it."""
    return {
        "id": new_incident_id(),
        "key": trigger.key,
        "title": trigger.title[:300],
        "severity": trigger.severity,
        "status": status,
        "summary": trigger.summary,
        "links": [{"label": item.label, "url": item.url} for item in trigger.links],
        "source": trigger.key.partition(":")[0],
        "occurrences": 1,
        "first_seen": now,
        "last_seen": now,
        "updated_at": now,
        "revision": 0,
    }


def link(conn: Connection, incident_id: str, event_id: str) -> None:
    link_many(conn, incident_id, [event_id])


def link_many(conn: Connection, incident_id: str, event_ids: list[str]) -> None:
    now = utcnow()
    rows = [{"event_id": e, "incident_id": incident_id, "at": now} for e in event_ids]
    conn.execute(_sql().link, rows)


def _open_resolved(
    conn: Connection, event_id: str, trigger: Trigger, mark: Any, detail: str
) -> str:
    now = utcnow()
    row = incident_row(trigger, IncidentStatus.RESOLVED, now)
    incident_id: str = row["id"]
    row |= {"resolved_by": row["source"], "resolved_at": now}
    conn.execute(insert(incidents), row)
    link(conn, incident_id, event_id)
    if mark.event_id and not conn.execute(_sql().seen, {"p_event": mark.event_id}).first():
        link(conn, incident_id, mark.event_id)
    record(conn, incident_id, actor=trigger.actor, action="stale",
           detail=f"{trigger.title}: arrived after it was resolved, {detail}",
           dedupe=f"{event_id}:stale")  # fmt: skip
    return incident_id


@dataclass(frozen=True)
class _Statements:
    mark: Any
    link: Any
    seen: Any


@functools.cache
def _sql() -> _Statements:
    # Built once: a burst of occurrences runs these per event (see apply._sql).
    key = incident_keys.c.key == bindparam("p_key")
    return _Statements(
        # FOR UPDATE on PostgreSQL; SQLite has one writer anyway.
        mark=select(incident_keys).where(key).with_for_update(),
        link=insert(incident_events),
        seen=select(incident_events.c.incident_id).where(
            incident_events.c.event_id == bindparam("p_event")
        ),
    )
