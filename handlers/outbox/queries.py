"""The delivery's reads and its lease on incidents, as statements built once per dialect.

A delivery message runs each of these once or twice for up to 20 incidents. Built per call,
with their id lists rendered as expanding IN, they cost more Python than PostgreSQL took
to run them (users' mix, 60-event batches: the outbox's statements were ~half of a routed
event's worker CPU)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, func, select, update

from hub.events.models import utcnow
from hub.incidents.changes import effects, incidents, key_ordered, lock_in_key_order
from hub.incidents.models import EffectStatus
from hub.runtime.db import read
from hub.runtime.rows import one_of

OPEN = (EffectStatus.PENDING, EffectStatus.ATTEMPTING)
# Each lane's effects go out in the order they were recorded; the lanes are independent.
LANES = ("slack.", "github.")


def lane_of(kind: str) -> str | None:
    """The lane of an effect of this kind (None: a kind of neither)."""
    return next((lane for lane in LANES if kind.startswith(lane)), None)


def lease(conn: Connection, incident_ids: list[str], lease_s: float) -> dict[str, Any]:
    """Those of the incidents this worker now holds (no other did), in the order given, with
    their rows as they were leased. In the caller's transaction: the delivery claims the
    first round's effects in the same commit (handlers/outbox/deliver.py)."""
    now = utcnow()
    sql = _sql(conn.dialect.name)
    params = {"p_ids": incident_ids, "p_now": now, "p_until": now + timedelta(seconds=lease_s)}
    if ordered_locks(conn, incident_ids):
        free = conn.execute(sql.lock_free, params).scalars()
        params["p_ids"] = list(free)
    held = {row.id: row for row in conn.execute(sql.lease, params)}
    return {i: held[i] for i in incident_ids if i in held}


def release(conn: Connection, incident_ids: list[str]) -> None:
    if ordered_locks(conn, incident_ids):
        lock_in_key_order(conn, incident_ids)
    unlease(conn, incident_ids)


def unlease(conn: Connection, incident_ids: list[str]) -> None:
    """`release` for rows the transaction has already locked in key order."""
    conn.execute(_sql(conn.dialect.name).release, {"p_ids": incident_ids})


def ordered_locks(conn: Connection, ids: list[Any]) -> bool:
    """Whether rows must be locked in order by a statement of their own before one
    statement changes these: on PostgreSQL, for more than one (one statement takes them in
    whatever order it finds them; SQLite has one writer)."""
    return conn.dialect.name == "postgresql" and len(ids) > 1


def any_due(engine: Engine, incident_ids: list[str]) -> list[str]:
    """Those of the incidents with an effect due now, in the order given."""
    if not incident_ids:
        return []
    params = {"p_ids": incident_ids, "p_open": list(OPEN), "p_now": utcnow()}
    with read(engine) as conn:
        due = set(conn.execute(_sql(engine.dialect.name).due, params).scalars())
    return [i for i in incident_ids if i in due]


@dataclass(frozen=True)
class Next:
    effect: Any
    open: int  # the lane's open effects when read, this one included


def next_effects(conn: Connection, incident_ids: list[str]) -> dict[tuple[str, str], Next]:
    """Each incident's first open effect in each lane, by (incident, lane), with how many
    are open in that lane: every lane in one read."""
    params = {"p_ids": incident_ids, "p_open": list(OPEN)}
    found = {}
    for row in conn.execute(_sql(conn.dialect.name).next, params):
        lane = lane_of(row.kind)
        if lane is not None:
            found[(row.incident_id, lane)] = Next(row, row.open)
    return found


def incident_rows(engine: Engine, incident_ids: list[str]) -> dict[str, Any]:
    if not incident_ids:
        return {}
    with read(engine) as conn:
        found = conn.execute(_sql(engine.dialect.name).incidents, {"p_ids": incident_ids})
        return {row.id: row for row in found}


@dataclass(frozen=True)
class _Statements:
    lock_free: Any
    lease: Any
    release: Any
    due: Any
    next: Any
    incidents: Any


@functools.cache
def _sql(dialect: str) -> _Statements:
    ids = functools.partial(one_of, name="p_ids", dialect=dialect)
    # `status || ''`: found through the incidents named, not the status index. After an
    # ANALYZE that saw few effects open, PostgreSQL walked every open effect's entry for
    # each delivery, and a burst of new incidents has thousands open.
    is_open = one_of(effects.c.status + "", "p_open", dialect)
    free = incidents.c.lease_until.is_(None) | (incidents.c.lease_until < bindparam("p_now"))
    lane = case(*((effects.c.kind.like(f"{lane}%"), lane) for lane in LANES))
    first = (
        select(func.min(effects.c.id).label("id"), func.count().label("open"))
        .where(ids(effects.c.incident_id), is_open)
        .group_by(effects.c.incident_id, lane)
        .subquery()
    )
    return _Statements(
        lock_free=key_ordered(ids(incidents.c.id), free),
        lease=update(incidents)
        .where(ids(incidents.c.id), free)
        .values(lease_until=bindparam("p_until"))
        .returning(*incidents.c),
        release=update(incidents).where(ids(incidents.c.id)).values(lease_until=None),
        due=select(effects.c.incident_id)
        .where(ids(effects.c.incident_id), is_open, effects.c.not_before <= bindparam("p_now"))
        .distinct(),
        next=select(effects, first.c.open).join(first, effects.c.id == first.c.id),
        incidents=select(incidents).where(ids(incidents.c.id)),
    )
