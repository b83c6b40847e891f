"""Periodic work: escalate incidents nobody acknowledged, and send effects whose delivery
message was lost (broker down when it was scheduled, worker killed while holding it)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from handlers.context import WorkflowContext
from handlers.upkeep.selfhealth import check_health
from hub.events.models import utcnow
from hub.incidents.changes import effects, incidents, owe, rearm, record, schedule_deliveries
from hub.incidents.models import EffectStatus, IncidentStatus
from hub.runtime.db import write

log = logging.getLogger(__name__)

STRANDED_AFTER_S = 10.0


def keep_house(ctx: WorkflowContext) -> None:
    escalated = escalate_unacknowledged(ctx)
    resent = resend_stranded_effects(ctx)
    check_health(ctx)
    if escalated or resent:
        log.info("housekeeping: %d escalated, %d deliveries resent", escalated, resent)


def escalate_unacknowledged(ctx: WorkflowContext) -> int:
    now = utcnow()
    cutoff = now - timedelta(seconds=ctx.settings.escalate_after_s)
    due = (
        select(incidents.c.id, incidents.c.mention)
        .where(
            incidents.c.status == IncidentStatus.OPEN,
            incidents.c.escalated_at.is_(None),
            incidents.c.first_seen < cutoff,
            # Under a silence nobody was told: the clock starts when the silence ends.
            incidents.c.silenced_until.is_(None) | (incidents.c.silenced_until < cutoff),
        )
        # In the order of their keys, as the router takes incidents: a burst's incidents come
        # due together, while their occurrences may still be arriving (no circle of waits).
        .order_by(incidents.c.key, incidents.c.id)
        .limit(100)
    )
    done = []
    with write(ctx.engine) as conn:
        for incident_id, routed_mention in conn.execute(due).all():
            # The WHERE makes a concurrent escalation of the same incident a no-op.
            claim = update(incidents).where(
                incidents.c.id == incident_id, incidents.c.escalated_at.is_(None)
            )
            if not conn.execute(claim.values(escalated_at=now, updated_at=now)).rowcount:
                continue
            minutes = int(ctx.settings.escalate_after_s // 60)
            who = routed_mention or ctx.settings.slack_oncall  # the rule's, else the default
            mention = f"{who} " if who else ""
            text = f"{mention}Still unacknowledged after {minutes} min: escalating."
            entry = record(
                conn,
                incident_id,
                actor="hub",
                action="escalated",
                detail=text,
                dedupe=f"escalate:{incident_id}",
            )
            owe(conn, incident_id, "slack.reply", f"slack.reply:{entry}", payload={"text": text})
            rearm(conn, incident_id, "slack.update", f"slack.update:{incident_id}")
            done.append(incident_id)
    schedule_deliveries(ctx.queue, done)
    return len(done)


def resend_stranded_effects(ctx: WorkflowContext) -> int:
    now = utcnow()
    stale = now - timedelta(seconds=STRANDED_AFTER_S)
    free = incidents.c.lease_until.is_(None) | (incidents.c.lease_until < now)
    stmt = (
        select(effects.c.incident_id)
        .outerjoin(incidents, incidents.c.id == effects.c.incident_id)
        .where(
            effects.c.status.in_((EffectStatus.PENDING, EffectStatus.ATTEMPTING)),
            effects.c.updated_at < stale,
            effects.c.not_before < now,
            free | effects.c.incident_id.is_(None),
        )
        .distinct()
        .limit(500)
    )
    with ctx.engine.connect() as conn:
        owners = [row[0] for row in conn.execute(stmt)]
    schedule_deliveries(ctx.queue, owners)
    return len(owners)
