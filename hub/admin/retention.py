"""Retention: empty the raw bodies of settled events past their age, keep everything else.

Processed and ignored events keep their body `HUB_RETAIN_PROCESSED_DAYS`, failed ones
`HUB_RETAIN_FAILED_DAYS` (longer: they may still be replayed). What stays is the event's
metadata (provider, type, delivery id, status, times, headers kept), its attempts, the
incidents it fed, and the audit trail; a redacted event can no longer be replayed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, update

from hub.admin import audit
from hub.config import Settings
from hub.events.ids import id_floor
from hub.events.models import Status, utcnow
from hub.events.store import event_bodies, events
from hub.ratelimits.outbound import Limits
from hub.runtime.db import write
from hub.runtime.periodic import Periodic

log = logging.getLogger(__name__)

CHUNK = 1000  # rows per transaction: short write locks beside a busy ingress


@dataclass(frozen=True, slots=True)
class RetentionResult:
    processed_redacted: int
    failed_redacted: int
    dry_run: bool


def run_retention(
    engine: Engine,
    settings: Settings,
    actor: str,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetentionResult:
    now = now or utcnow()
    classes = (
        ((Status.PROCESSED, Status.IGNORED), settings.retain_processed_days),
        ((Status.FAILED,), settings.retain_failed_days),
    )
    counts: list[int] = []
    for statuses, days in classes:
        if days <= 0:  # kept for ever
            counts.append(0)
            continue
        cutoff = now - timedelta(days=days)
        counts.append(_redact(engine, statuses, cutoff, now, dry_run))
    result = RetentionResult(counts[0], counts[1], dry_run)
    if actor != "scheduler" or any(counts):
        audit.write_entry(
            engine, actor, "retention.run", "events",
            processed_redacted=counts[0], failed_redacted=counts[1], dry_run=dry_run,
            retain_processed_days=settings.retain_processed_days,
            retain_failed_days=settings.retain_failed_days,
        )  # fmt: skip
    return result


def _redact(
    engine: Engine, statuses: tuple[Status, ...], cutoff: datetime, now: datetime, dry_run: bool
) -> int:
    # The id range uses the primary key (ids carry the time received); received_at is exact.
    due = (
        events.c.id < id_floor(cutoff),
        events.c.received_at < cutoff,
        events.c.status.in_(statuses),
        events.c.redacted_at.is_(None),
    )
    if dry_run:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(*due)).scalar_one())
    total = 0
    while True:
        chunk = select(events.c.id).where(*due).order_by(events.c.id).limit(CHUNK)
        with write(engine) as conn:
            ids = [r[0] for r in conn.execute(chunk)]
            if ids:
                redacted = conn.execute(
                    update(events)
                    .where(events.c.id.in_(ids), events.c.status.in_(statuses))
                    .values(redacted_at=now)
                    .returning(events.c.id)
                )
                emptied = [r[0] for r in redacted]
                if emptied:
                    conn.execute(
                        update(event_bodies)
                        .where(event_bodies.c.event_id.in_(emptied))
                        .values(body=b"")
                    )
        total += len(ids)
        if len(ids) < CHUNK:
            return total


def retention_clock(engine: Engine, settings: Settings, limits: Limits) -> Periodic:
    """Runs retention every `HUB_RETENTION_INTERVAL_S` in one process of the deployment: each
    process has a clock, and the shared limit lets one of them run per interval."""
    interval = settings.retention_interval_s

    def tick() -> None:
        if limits.reserve("retention", interval * 0.9) == 0:
            result = run_retention(engine, settings, "scheduler")
            if result.processed_redacted or result.failed_redacted:
                log.info(
                    "retention emptied %d processed/ignored and %d failed event bodies",
                    result.processed_redacted,
                    result.failed_redacted,
                )

    return Periodic("retention", interval, tick, first=tick)
