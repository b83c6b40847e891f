"""Performs the outbox: the Slack posts and GitHub calls incidents owe, in order, under the
shared rate limits, exactly once.

One worker at a time holds an incident (a lease on its row), so its effects go out in the
order they were recorded: the message before its updates and thread replies. Each call is
bracketed by two commits: `attempting` before, `done` after. A worker that dies in between
leaves `attempting`, and the next one looks for the result (a Slack message or GitHub
comment carrying the effect's marker) before calling again, so the call is never repeated.
A rate limit or a 429 reschedules the delivery after the wait instead of sleeping in a
worker thread, and does not count as a failure."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update

from handlers.context import WorkflowContext
from handlers.outbox.performers import Done, Perform, Wait, performer_for
from hub.events.models import Status, as_utc, utcnow
from hub.events.store import attempts, events
from hub.incidents.changes import effects, incidents, schedule_deliveries, schedule_delivery
from hub.incidents.models import EffectStatus
from hub.runtime.backoff import backoff
from hub.runtime.db import write
from hub.runtime.logs import bind
from integrations.outbound import OutboundError, Permanent, RateLimited

log = logging.getLogger(__name__)

LANES = ("slack.", "github.")
OPEN = (EffectStatus.PENDING, EffectStatus.ATTEMPTING)


def deliver_effects(ctx: WorkflowContext, target: str | list[str] | None) -> None:
    """The delivery actor's body, for one incident, several, or effects of no incident.

    Only the lease holder delivers and reschedules. An incident whose lease is held is
    skipped at once: the holder checks for due effects again after releasing, so whatever
    was recorded while it worked is still delivered, and a burst of messages for one
    incident does not turn into a swarm of rescheduled ones. Several incidents are leased
    in one transaction and released in one, and delivered one after the other."""
    if target is None:
        waits = [_drain_lane(ctx, None, lane) for lane in LANES]
        due = [w for w in waits if w is not None]
        if due:
            schedule_delivery(ctx.queue, None, delay_s=min(due))
        return
    pending = [target] if isinstance(target, str) else list(dict.fromkeys(target))
    while pending:
        leased = _lease(ctx, pending)
        if not leased:
            return
        blocked: dict[str, float] = {}
        later: list[str] = []
        began = time.monotonic()
        try:
            for incident_id in leased:
                if time.monotonic() - began > ctx.settings.effect_lease_s / 2:
                    # Slow calls ate into the lease: the rest go to a message of their own
                    # rather than risk a lease running out while this worker still delivers.
                    later.append(incident_id)
                    continue
                waits = [_drain_lane(ctx, incident_id, lane) for lane in LANES]
                if due := [w for w in waits if w is not None]:
                    blocked[incident_id] = min(due)
        finally:
            _release(ctx, leased)
        schedule_deliveries(ctx.queue, later)
        for incident_id, wait in blocked.items():
            schedule_delivery(ctx.queue, incident_id, delay_s=wait)
        pending = _any_due(ctx, [i for i in leased if i not in blocked and i not in later])


def _any_due(ctx: WorkflowContext, incident_ids: list[str]) -> list[str]:
    """Those of the incidents with an effect due now, in the order given."""
    if not incident_ids:
        return []
    stmt = select(effects.c.incident_id).where(
        effects.c.incident_id.in_(incident_ids),
        effects.c.status.in_(OPEN),
        effects.c.not_before <= utcnow(),
    )
    with ctx.engine.connect() as conn:
        due = set(conn.execute(stmt.distinct()).scalars())
    return [i for i in incident_ids if i in due]


def _drain_lane(ctx: WorkflowContext, incident_id: str | None, lane: str) -> float | None:
    """Perform this lane's due effects in order; seconds until the next try, if blocked."""
    while True:
        effect = _next(ctx, incident_id, lane)
        if effect is None:
            return None
        wait = (as_utc(effect.not_before) - utcnow()).total_seconds()
        if wait > 0:
            return wait
        if not _attempting(ctx, effect):
            if incident_id is None:
                return None  # another worker took it (no lease in this lane)
            continue  # re-armed since it was read: read it again
        result = _perform(ctx, effect)
        if isinstance(result, Wait):
            return result.seconds


def _next(ctx: WorkflowContext, incident_id: str | None, lane: str) -> Any:
    if incident_id is not None:
        mine: Any = (effects.c.incident_id == incident_id) & effects.c.status.in_(OPEN)
    else:
        # No lease here: an `attempting` effect is someone else's until it is stale.
        stale = utcnow() - timedelta(seconds=ctx.settings.effect_lease_s)
        mine = effects.c.incident_id.is_(None) & (
            (effects.c.status == EffectStatus.PENDING)
            | ((effects.c.status == EffectStatus.ATTEMPTING) & (effects.c.updated_at < stale))
        )
    stmt = (
        select(effects).where(mine, effects.c.kind.startswith(lane)).order_by(effects.c.id).limit(1)
    )
    with ctx.engine.connect() as conn:
        return conn.execute(stmt).first()


def _perform(ctx: WorkflowContext, effect: Any) -> Done | Wait:
    # The event that caused the effect (if one did) follows it into the logs.
    ids = {"incident_id": effect.incident_id, "event_id": effect.cause_event_id}
    with bind(**ids, effect=effect.kind):
        return _call(ctx, effect)


def _call(ctx: WorkflowContext, effect: Any) -> Done | Wait:
    perform: Perform = performer_for(effect.kind)
    incident = _incident(ctx, effect.incident_id)
    # After a crash, or a failure that may have happened after the call took effect (a
    # timeout, a 500), look for the result before calling again.
    crashed = effect.status == EffectStatus.ATTEMPTING or effect.failures > 0
    try:
        result = perform(ctx, effect, incident, crashed)
    except RateLimited as exc:
        _reschedule(ctx, effect.id, exc.retry_after, failed=None)
        ctx.metrics.effect(effect.kind, "rate_limited")
        return Wait(exc.retry_after)
    except Permanent as exc:
        _dead(ctx, effect, exc.reason)
        log.error("effect %s (%s) gave up: %s", effect.id, effect.kind, exc.reason)
        return Done({})
    except OutboundError as exc:
        return _failed(ctx, effect, exc.reason)
    except Exception as exc:  # a bug or an SDK surprise: retried like a transient error
        log.exception("effect %s (%s) failed", effect.id, effect.kind)
        return _failed(ctx, effect, f"{type(exc).__name__}: {exc}")
    if isinstance(result, Wait):
        _reschedule(ctx, effect.id, result.seconds, failed=None)
        ctx.metrics.effect(effect.kind, "waited")
        return result
    _finish(ctx, effect.id, EffectStatus.DONE, incident_values=result.incident_values)
    ctx.metrics.effect(effect.kind, "done")
    log.info("effect %s (%s) done", effect.id, effect.kind)
    return result


def _failed(ctx: WorkflowContext, effect: Any, reason: str) -> Done | Wait:
    settings = ctx.settings
    if effect.failures + 1 >= settings.effect_max_failures:
        _dead(ctx, effect, reason)
        log.error(
            "effect %s (%s) dead after %d failures: %s",
            effect.id,
            effect.kind,
            settings.effect_max_failures,
            reason,
        )
        return Done({})
    delay = backoff(effect.failures + 1, settings.effect_min_backoff_s, 300.0)
    _reschedule(ctx, effect.id, delay, failed=reason)
    ctx.metrics.effect(effect.kind, "retry")
    log.warning("effect %s (%s) failed, retry in %.0f s: %s", effect.id, effect.kind, delay, reason)
    return Wait(delay)


def _incident(ctx: WorkflowContext, incident_id: str | None) -> Any:
    if incident_id is None:
        return None
    with ctx.engine.connect() as conn:
        return conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()


def _attempting(ctx: WorkflowContext, effect: Any) -> bool:
    """Claim the effect as read (unchanged since): committed before the call, so that if
    this process dies during it, the next delivery knows the call may have happened."""
    with write(ctx.engine) as conn:
        claimed = conn.execute(
            update(effects)
            .where(
                effects.c.id == effect.id,
                effects.c.status == effect.status,
                effects.c.updated_at == effect.updated_at,
            )
            .values(status=EffectStatus.ATTEMPTING, updated_at=utcnow())
        )
        return bool(claimed.rowcount)


def _reschedule(ctx: WorkflowContext, effect_id: int, after_s: float, failed: str | None) -> None:
    values: dict[str, Any] = {
        "status": EffectStatus.PENDING,
        "not_before": utcnow() + timedelta(seconds=after_s),
        "updated_at": utcnow(),
    }
    if failed is not None:
        values |= {"failures": effects.c.failures + 1, "last_error": failed}
    with write(ctx.engine) as conn:
        conn.execute(update(effects).where(effects.c.id == effect_id).values(**values))


def _finish(
    ctx: WorkflowContext,
    effect_id: int,
    status: EffectStatus,
    *,
    error: str | None = None,
    incident_values: dict[str, Any] | None = None,
) -> None:
    with write(ctx.engine) as conn:
        # `status != pending`: a message update re-armed while it was being sent stays
        # pending and goes out again with the newer state.
        conn.execute(
            update(effects)
            .where(effects.c.id == effect_id, effects.c.status != EffectStatus.PENDING)
            .values(status=status, last_error=error, updated_at=utcnow())
        )
        if incident_values:
            row = conn.execute(select(effects.c.incident_id).where(effects.c.id == effect_id))
            incident_id = row.scalar_one()
            conn.execute(
                update(incidents).where(incidents.c.id == incident_id).values(**incident_values)
            )


def _dead(ctx: WorkflowContext, effect: Any, reason: str) -> None:
    """Give up on an effect, and show it where admins look: the event that owed it becomes
    `failed` with an attempt naming the call and its error. Replaying that event (once the
    cause is fixed) brings the effect back (hub.admin.replay)."""
    now = utcnow()
    error = f"{effect.kind}: {reason}"
    ctx.metrics.effect(effect.kind, "dead")
    with write(ctx.engine) as conn:
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


def _lease(ctx: WorkflowContext, incident_ids: list[str]) -> list[str]:
    """Those of the incidents this worker now holds (no other did), in the order given."""
    now = utcnow()
    until = now + timedelta(seconds=ctx.settings.effect_lease_s)
    free = incidents.c.lease_until.is_(None) | (incidents.c.lease_until < now)
    with write(ctx.engine) as conn:
        stmt = update(incidents).where(incidents.c.id.in_(incident_ids), free)
        held = set(conn.execute(stmt.values(lease_until=until).returning(incidents.c.id)).scalars())
    return [i for i in incident_ids if i in held]


def _release(ctx: WorkflowContext, incident_ids: list[str]) -> None:
    with write(ctx.engine) as conn:
        stmt = update(incidents).where(incidents.c.id.in_(incident_ids))
        conn.execute(stmt.values(lease_until=None))
