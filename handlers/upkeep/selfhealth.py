"""The hub's own health as incidents: too many failed events, a deep queue, Slack rate
limiting us. Each condition opens one incident through the same Slack flow as any other,
when it crosses its threshold, and resolves it when a later check finds it clear.

Checked from housekeeping at most once per `HUB_HEALTH_CHECK_INTERVAL_S` across all
processes (the shared limit). A threshold of 0 turns its check off. An incident resolves
only after its condition has been clear for `HUB_HEALTH_CLEAR_AFTER_S`, so a value hovering
at its threshold does not open and resolve one at every check."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from handlers.context import WorkflowContext
from handlers.triggers.apply import raise_or_clear
from handlers.triggers.model import Change, Severity, Trigger
from hub.events.models import ACTIVE, Status, utcnow
from hub.events.store import events
from hub.observability.worker_metrics import SEP

log = logging.getLogger(__name__)

# A counters field the /metrics exporter does not know, so it is not exported: how many
# Slack 429s the previous check had seen (the counters are cumulative).
SEEN_429 = f"health{SEP}slack_429s_seen"


@dataclass(frozen=True)
class Reading:
    key: str
    breached: bool
    title: str
    summary: str
    severity: Severity


def check_health(ctx: WorkflowContext) -> list[str]:
    """Run the checks if it is this process's turn; the keys of incidents opened/resolved."""
    interval = ctx.settings.health_check_interval_s
    if interval <= 0 or ctx.limits.reserve("health", interval * 0.9) > 0:
        return []
    checks: list[Callable[[WorkflowContext], Reading | None]] = [
        failed_events,
        queue_depth,
        slack_rate_limited,
    ]
    changed = []
    for check in checks:
        reading = check(ctx)
        if reading is not None and _apply(ctx, reading):
            changed.append(reading.key)
    return changed


def _apply(ctx: WorkflowContext, reading: Reading) -> bool:
    change = Change.OPEN if reading.breached else Change.RESOLVE
    note = "" if reading.breached else f"cleared: {reading.summary}"
    trigger = Trigger(change, reading.key, "hub", title=reading.title, severity=reading.severity,
                      summary=reading.summary, note=note)  # fmt: skip
    cause = f"health:{reading.key}:{uuid.uuid4().hex}"
    quiet = ctx.settings.health_clear_after_s
    outcome = raise_or_clear(ctx, trigger, cause, quiet_for_s=quiet)
    if outcome.changed:
        log.warning("hub health %s: %s (%s)", reading.key, outcome.message, reading.summary)
    return outcome.changed


def failed_events(ctx: WorkflowContext) -> Reading | None:
    limit = ctx.settings.health_failed_events
    if limit <= 0:
        return None
    window = ctx.settings.health_window_s
    since = utcnow() - timedelta(seconds=window)
    stmt = select(func.count()).where(
        events.c.status == Status.FAILED, events.c.updated_at >= since
    )
    with ctx.engine.connect() as conn:
        n = int(conn.execute(stmt).scalar_one())
    minutes = max(1, round(window / 60))
    return Reading(
        "hub:health:failed-events",
        n >= limit,
        f"Events are failing: {n} in the last {minutes} min",
        f"{n} events failed in the last {minutes} min (threshold {limit}); "
        "see `hub events list --status failed`, fix the cause, then `hub replay --status failed`",
        Severity.SEV2,
    )


def queue_depth(ctx: WorkflowContext) -> Reading | None:
    limit = ctx.settings.health_queue_depth
    if limit <= 0:
        return None
    stmt = select(func.count()).where(events.c.status.in_(ACTIVE))
    with ctx.engine.connect() as conn:
        n = int(conn.execute(stmt).scalar_one())
    return Reading(
        "hub:health:queue-depth",
        n >= limit,
        f"Events are piling up: {n} waiting to be processed",
        f"{n} events not yet processed (threshold {limit}); more `hub worker` processes drain "
        "it faster",
        Severity.SEV2,
    )


def slack_rate_limited(ctx: WorkflowContext) -> Reading | None:
    limit = ctx.settings.health_slack_429s
    if limit <= 0:
        return None
    counters = ctx.metrics.counters
    totals = counters.totals()
    seen_before = totals.get(SEEN_429, 0)
    total = sum(v for k, v in totals.items() if k.startswith(f"limited{SEP}slack{SEP}"))
    if total > seen_before:
        counters.add(SEEN_429, total - seen_before)
    recent = total - seen_before
    return Reading(
        "hub:health:slack-rate-limited",
        recent >= limit,
        f"Slack is rate limiting the hub: {recent} 429s since the last check",
        f"{recent} Slack 429 answers since the last check (threshold {limit}); messages are "
        "delayed, not lost",
        Severity.SEV3,
    )
