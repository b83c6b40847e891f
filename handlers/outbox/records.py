"""The outbox's writes around a call, each on a connection the caller's transaction holds:
the delivery records the outcomes of several incidents' calls in one commit
(handlers/outbox/deliver.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, tuple_, update

from handlers.outbox.queries import ordered_locks, unlease
from hub.events.models import Status, as_utc, utcnow
from hub.events.store import attempts, events
from hub.incidents.changes import effects, incidents, lock_in_key_order
from hub.incidents.models import EffectStatus
from hub.runtime.rows import one_of


def claim(conn: Connection, effect: Any) -> bool:
    """Mark the effect `attempting` if it is as it was read (not re-armed since): committed
    before the call, so that if this process dies during it, the next delivery knows the
    call may have happened."""
    return bool(claim_all(conn, [effect]))


def claim_all(conn: Connection, read: list[Any]) -> list[Any]:
    """`claim` for several effects in one statement: those claimed, in the order given."""
    if not read:
        return []
    keys = [(e.id, e.status, e.updated_at) for e in read]
    params = {"p_ids": [e.id for e in read], "p_keys": keys, "p_now": utcnow()}
    found = conn.execute(_sql(conn.dialect.name).claim, params)
    claimed = set(found.scalars())
    return [e for e in read if e.id in claimed]


def unclaim(conn: Connection, effect: Any) -> None:
    """Back as it was read, for a claimed effect whose call was not made after all (one
    read as `attempting`, left by a crash, stays so: its call may still have happened)."""
    conn.execute(
        update(effects)
        .where(effects.c.id == effect.id, effects.c.status == EffectStatus.ATTEMPTING)
        .values(status=effect.status, updated_at=utcnow())
    )


def reschedule(conn: Connection, effect_id: int, after_s: float, failed: str | None) -> None:
    values: dict[str, Any] = {
        "status": EffectStatus.PENDING,
        "not_before": utcnow() + timedelta(seconds=after_s),
        "updated_at": utcnow(),
    }
    if failed is not None:
        values |= {"failures": effects.c.failures + 1, "last_error": failed}
    conn.execute(update(effects).where(effects.c.id == effect_id).values(**values))


@dataclass(frozen=True)
class Finished:
    """A call made: the effect is done, and what the call learnt is set on its incident.
    Callable on a connection as any other record; a round's are written together
    (`record_all`)."""

    effect_id: int
    incident_id: str | None
    incident_values: dict[str, Any]

    def __call__(self, conn: Connection) -> None:
        finish_all(conn, [self])


def record_all(
    conn: Connection,
    outcomes: list[tuple[int, Callable[[Connection], None]]],
    release: Sequence[str] = (),
) -> None:
    """A round's outcomes (effect id, what to write), in one transaction, with the release of
    the incidents done with (`release`). Every transaction that changes several rows takes
    incidents before effects, incidents in the order of their keys and effects in the order
    of their ids, as the router's batches do: two never wait on each other in a circle
    (PostgreSQL would break it after a second)."""
    finished = [record for _, record in outcomes if isinstance(record, Finished)]
    learnt = _learnt(finished)
    held = list(dict.fromkeys([*release, *(f.incident_id for f in learnt if f.incident_id)]))
    if len(held) > 1 or (held and not release):
        lock_in_key_order(conn, held)
    if release:
        # One row, or rows locked above: the release's UPDATE cannot take them out of order.
        unlease(conn, list(release))
    if len(finished) == len(outcomes):
        _finish(conn, finished, learnt)
        return
    for _, record in sorted(outcomes, key=lambda outcome: outcome[0]):
        record(conn)


def finish_all(conn: Connection, finished: list[Finished]) -> None:
    learnt = _learnt(finished)
    lock_in_key_order(conn, [f.incident_id for f in learnt if f.incident_id])
    _finish(conn, finished, learnt)


def _learnt(finished: list[Finished]) -> list[Finished]:
    """Those that set what they learnt on their incidents, whose rows are locked first."""
    return [f for f in finished if f.incident_values and f.incident_id]


def _finish(conn: Connection, finished: list[Finished], learnt: list[Finished]) -> None:
    """`finish_all` once the incidents that learn something are locked."""
    if not finished:
        return
    sql = _sql(conn.dialect.name)
    # `status != pending`: a message update re-armed while it was being sent stays
    # pending and goes out again with the newer state. The router re-arms in id order.
    ids = [f.effect_id for f in finished]
    if ordered_locks(conn, ids):
        conn.execute(sql.lock_effects, {"p_ids": ids})
    conn.execute(sql.finish, {"p_ids": ids, "p_now": utcnow()})
    for f in learnt:
        values = {f"p_{name}": value for name, value in f.incident_values.items()}
        conn.execute(_incident_update(tuple(f.incident_values)), values | {"p_id": f.effect_id})


@dataclass(frozen=True)
class _Statements:
    claim: Any
    finish: Any
    lock_effects: Any


@functools.cache
def _sql(dialect: str) -> _Statements:
    # Built once: each effect delivered runs them, and building them per effect was 0.2 s
    # of 1.5 s delivering 400 incidents' posts (cProfile), more Python than running them.
    # An effect is as it was read if its status and updated_at are: every change sets both.
    # The ids on their own as well: SQLite scans the table for a row-value IN alone.
    by_ids = one_of(effects.c.id, "p_ids", dialect)
    as_read = tuple_(effects.c.id, effects.c.status, effects.c.updated_at)
    return _Statements(
        claim=update(effects)
        .where(by_ids, as_read.in_(bindparam("p_keys", expanding=True)))
        .values(status=EffectStatus.ATTEMPTING, updated_at=bindparam("p_now"))
        .returning(effects.c.id),
        finish=update(effects)
        .where(
            by_ids,
            effects.c.status != EffectStatus.PENDING,
        )
        .values(status=EffectStatus.DONE, last_error=None, updated_at=bindparam("p_now")),
        lock_effects=select(effects.c.id)
        .where(by_ids)
        .order_by(effects.c.id)
        .with_for_update(key_share=True),
    )


@functools.lru_cache(maxsize=64)
def _incident_update(names: tuple[str, ...]) -> Any:
    """What a call learnt (the Slack message's channel and ts, the issue's number) set on
    the effect's incident, one statement per set of names."""
    owner = select(effects.c.incident_id).where(effects.c.id == bindparam("p_id"))
    return (
        update(incidents)
        .where(incidents.c.id == owner.scalar_subquery())
        .values({name: bindparam(f"p_{name}") for name in names})
    )


def dead(conn: Connection, effect: Any, reason: str) -> None:
    """Give up on an effect, and show it where admins look: the event that owed it becomes
    `failed` with an attempt naming the call and its error. Replaying that event (once the
    cause is fixed) brings the effect back (hub.admin.replay)."""
    now = utcnow()
    error = f"{effect.kind}: {reason}"
    conn.execute(
        update(effects)
        .where(effects.c.id == effect.id, effects.c.status != EffectStatus.PENDING)
        .values(status=EffectStatus.DEAD, last_error=reason, updated_at=now)
    )
    if effect.cause_event_id is None:
        return
    settled = (Status.PROCESSED, Status.IGNORED, Status.FAILED)
    conn.execute(
        update(events)
        .where(events.c.id == effect.cause_event_id, events.c.status.in_(settled))
        .values(status=Status.FAILED, last_error=error, updated_at=now, deadline=None)
    )
    attempt = {
        "event_id": effect.cause_event_id,
        "workflow": f"effect:{effect.kind}",
        "started_at": as_utc(effect.created_at),
        "finished_at": now,
        "outcome": "error",
        "error": error,
    }
    conn.execute(insert(attempts), attempt)
