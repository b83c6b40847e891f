"""Performs the outbox: the Slack posts and GitHub calls incidents owe, in order, under the
shared rate limits, exactly once.

One worker at a time holds an incident (a lease on its row), so its effects go out in the
order they were recorded: the message before its updates and thread replies. Each call is
bracketed by two commits: `attempting` before, `done` after. A worker that dies in between
leaves `attempting`, and the next one looks for the result (a Slack message or GitHub
comment carrying the effect's marker) before calling again, so the call is never repeated.
A rate limit or a 429 reschedules the delivery after the wait instead of sleeping in a
worker thread, and does not count as a failure.

A delivery message holds up to 20 incidents, delivered in rounds: the next effect of each
in each lane is claimed (`attempting`) in one commit (the first round's with the lease), the
calls are made one after the other, and what came of them is recorded in one commit, with
the release of the incidents that have nothing more to do. A new incident's post and issue
take two commits. A worker that dies mid-round leaves the round's effects `attempting`,
called or not, and each is looked for before it is called again: more lookups after a
crash, for far fewer write transactions in a burst."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, select

from handlers.context import WorkflowContext
from handlers.outbox import queries, records
from handlers.outbox.performers import Done, Perform, Wait, performer_for
from handlers.outbox.rounds import Round, again_after
from hub.events.models import as_utc, utcnow
from hub.incidents.changes import effects, schedule_deliveries, schedule_delivery
from hub.incidents.models import EffectStatus
from hub.runtime.backoff import backoff
from hub.runtime.db import read, write
from hub.runtime.logs import bind
from integrations.outbound import OutboundError, Permanent, RateLimited

log = logging.getLogger(__name__)

# What a call's outcome writes, run in the transaction that records a round's outcomes.
Record = Callable[[Connection], None]


def deliver_effects(ctx: WorkflowContext, target: str | list[str] | None) -> None:
    """The delivery actor's body, for one incident, several, or effects of no incident.

    Only the lease holder delivers and reschedules. An incident whose lease is held is
    skipped at once: the holder checks for due effects again after releasing, so whatever
    was recorded while it worked is still delivered, and a burst of messages for one
    incident does not turn into a swarm of rescheduled ones. Several incidents are leased
    in one transaction, which claims their first round of effects too, and delivered
    together (`_drain`); each is released in the commit that records its last call."""
    if target is None:
        waits = [_drain_unowned(ctx, lane) for lane in queries.LANES]
        due = [w for w in waits if w is not None]
        if due:
            schedule_delivery(ctx.queue, None, delay_s=min(due))
        return
    pending = [target] if isinstance(target, str) else list(dict.fromkeys(target))
    while pending:
        with write(ctx.engine) as conn:
            leased = queries.lease(conn, pending, ctx.settings.effect_lease_s)
            found = queries.next_effects(conn, list(leased)) if leased else {}
            first = Round.of(found, [(i, lane) for lane in queries.LANES for i in leased])
            first.claim(conn)
        if not leased:
            return
        held = dict.fromkeys(leased)  # not released yet
        try:
            blocked, later = _drain(ctx, leased, found, first, held)
        finally:
            if held:
                with write(ctx.engine) as conn:
                    queries.release(conn, list(held))
        schedule_deliveries(ctx.queue, later)
        for incident_id, wait in blocked.items():
            schedule_delivery(ctx.queue, incident_id, delay_s=wait)
        rest = [i for i in leased if i not in blocked and i not in later]
        pending = queries.any_due(ctx.engine, rest)


def _drain(
    ctx: WorkflowContext,
    leased: dict[str, Any],
    found: dict[tuple[str, str], queries.Next],
    first: Round,
    held: dict[str, None],
) -> tuple[dict[str, float], list[str]]:
    """Perform the incidents' due effects, each lane in order, in rounds: the next effect of
    every incident in every lane claimed in one transaction (the first round's with the
    lease), the calls made one after the other (Slack's before GitHub's), their outcomes
    recorded in one, which also releases the incidents with nothing more to do here (taken
    out of `held`). Answers the seconds until the next try of incidents whose lane is
    blocked, and the incidents left for another message: once half the lease has gone,
    slow calls must not run it out while this worker still delivers.

    Every lane's next effects are read with the lease, and read again only for incidents
    that had more open in the lane (or whose claim failed): what is recorded meanwhile is
    found after the release (`queries.any_due`). Only the lease holder finishes an effect,
    so one read stays each lane's next until this worker performs it."""
    deadline = time.monotonic() + ctx.settings.effect_lease_s / 2
    blocked = dict(first.blocked)
    later: list[str] = []
    rows: dict[str, Any] | None = leased  # as leased: the first round's; calls change them
    round_ = first
    while round_.due:
        outcomes, waiting, unstarted = _perform_all(ctx, round_.claimed, deadline, rows)
        rows = None
        later += unstarted
        for effect in round_.claimed:
            if effect.id in waiting:
                wait = waiting[effect.id]
                blocked[effect.incident_id] = min(wait, blocked.get(effect.incident_id, wait))
        again = again_after(round_, found, waiting, unstarted)
        going_on = list(dict.fromkeys(incident_id for incident_id, _ in again))
        done_with = [i for i in held if i not in going_on]
        with write(ctx.engine) as conn:
            records.record_all(conn, outcomes, release=done_with)
        for incident_id in done_with:
            del held[incident_id]
        if not again:
            break
        if time.monotonic() > deadline:
            later += going_on
            break
        for pair in again:
            found.pop(pair)
        with read(ctx.engine) as conn:
            found |= queries.next_effects(conn, going_on)
        round_ = Round.of(found, again)
        if round_.due:
            with write(ctx.engine) as conn:
                round_.claim(conn)
        blocked |= {i: min(w, blocked.get(i, w)) for i, w in round_.blocked.items()}
    return blocked, later


def _perform_all(
    ctx: WorkflowContext, claimed: list[Any], deadline: float, rows: dict[str, Any] | None
) -> tuple[list[tuple[int, Record]], dict[int, float], list[str]]:
    """Make the claimed effects' calls until the deadline, and give back the claims of those
    not made. Answers what to record (the caller records it with the round's releases), the
    effects told to wait (by id, and how long), and the incidents not started. Should a call
    raise, what came of those made is recorded before the error goes on."""
    if rows is None:
        rows = queries.incident_rows(ctx.engine, [e.incident_id for e in claimed])
    outcomes: list[tuple[int, Record]] = []
    waiting: dict[int, float] = {}
    unstarted: list[str] = []
    try:
        for effect in claimed:
            if time.monotonic() > deadline:
                outcomes.append((effect.id, partial(records.unclaim, effect=effect)))
                unstarted.append(effect.incident_id)
                continue
            result, record = _perform(ctx, effect, rows.get(effect.incident_id))
            outcomes.append((effect.id, record))
            if isinstance(result, Wait):
                waiting[effect.id] = result.seconds
    except BaseException:
        if outcomes:
            with write(ctx.engine) as conn:
                records.record_all(conn, outcomes)
        raise
    return outcomes, waiting, unstarted


def _drain_unowned(ctx: WorkflowContext, lane: str) -> float | None:
    """Effects of no incident (slash command answers): no lease, so each is claimed, called
    and recorded on its own; seconds until the next try, if blocked."""
    while True:
        effect = _next_unowned(ctx, lane)
        if effect is None:
            return None
        wait = (as_utc(effect.not_before) - utcnow()).total_seconds()
        if wait > 0:
            return wait
        with write(ctx.engine) as conn:
            if not records.claim(conn, effect):
                return None  # another worker took it
        result, record = _perform(ctx, effect, None)
        with write(ctx.engine) as conn:
            record(conn)
        if isinstance(result, Wait):
            return result.seconds


def _next_unowned(ctx: WorkflowContext, lane: str) -> Any:
    # No lease here: an `attempting` effect is someone else's until it is stale.
    stale = utcnow() - timedelta(seconds=ctx.settings.effect_lease_s)
    mine = effects.c.incident_id.is_(None) & (
        (effects.c.status == EffectStatus.PENDING)
        | ((effects.c.status == EffectStatus.ATTEMPTING) & (effects.c.updated_at < stale))
    )
    stmt = (
        select(effects).where(mine, effects.c.kind.startswith(lane)).order_by(effects.c.id).limit(1)
    )
    with read(ctx.engine) as conn:
        return conn.execute(stmt).first()


def _perform(ctx: WorkflowContext, effect: Any, incident: Any) -> tuple[Done | Wait, Record]:
    # The event that caused the effect (if one did) follows it into the logs.
    ids = {"incident_id": effect.incident_id, "event_id": effect.cause_event_id}
    with bind(**ids, effect=effect.kind):
        return _call(ctx, effect, incident)


def _call(ctx: WorkflowContext, effect: Any, incident: Any) -> tuple[Done | Wait, Record]:
    perform: Perform = performer_for(effect.kind)
    # After a crash, or a failure that may have happened after the call took effect (a
    # timeout, a 500), look for the result before calling again.
    crashed = effect.status == EffectStatus.ATTEMPTING or effect.failures > 0
    try:
        result = perform(ctx, effect, incident, crashed)
    except RateLimited as exc:
        ctx.metrics.effect(effect.kind, "rate_limited")
        wait = exc.retry_after
        return Wait(wait), partial(
            records.reschedule, effect_id=effect.id, after_s=wait, failed=None
        )
    except Permanent as exc:
        log.error("effect %s (%s) gave up: %s", effect.id, effect.kind, exc.reason)
        return Done({}), _dead(ctx, effect, exc.reason)
    except OutboundError as exc:
        return _failed(ctx, effect, exc.reason)
    except Exception as exc:  # a bug or an SDK surprise: retried like a transient error
        log.exception("effect %s (%s) failed", effect.id, effect.kind)
        return _failed(ctx, effect, f"{type(exc).__name__}: {exc}")
    if isinstance(result, Wait):
        ctx.metrics.effect(effect.kind, "waited")
        after = result.seconds
        return result, partial(records.reschedule, effect_id=effect.id, after_s=after, failed=None)
    ctx.metrics.effect(effect.kind, "done")
    log.info("effect %s (%s) done", effect.id, effect.kind)
    values = result.incident_values
    return result, records.Finished(effect.id, effect.incident_id, values)


def _failed(ctx: WorkflowContext, effect: Any, reason: str) -> tuple[Done | Wait, Record]:
    settings = ctx.settings
    if effect.failures + 1 >= settings.effect_max_failures:
        log.error(
            "effect %s (%s) dead after %d failures: %s",
            effect.id,
            effect.kind,
            settings.effect_max_failures,
            reason,
        )
        return Done({}), _dead(ctx, effect, reason)
    delay = backoff(effect.failures + 1, settings.effect_min_backoff_s, 300.0)
    ctx.metrics.effect(effect.kind, "retry")
    log.warning("effect %s (%s) failed, retry in %.0f s: %s", effect.id, effect.kind, delay, reason)
    return Wait(delay), partial(
        records.reschedule, effect_id=effect.id, after_s=delay, failed=reason
    )


def _dead(ctx: WorkflowContext, effect: Any, reason: str) -> Record:
    ctx.metrics.effect(effect.kind, "dead")
    return partial(records.dead, effect=effect, reason=reason)
