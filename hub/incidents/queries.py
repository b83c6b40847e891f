"""The read side of incidents for the admin API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from hub.events.models import as_utc, as_utc_or_none
from hub.events.queries import clamp_limit
from hub.incidents.changes import incidents, timeline
from hub.incidents.models import IncidentEvent

incident_events = IncidentEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    status: str | None = None
    severity: str | None = None
    since: datetime | None = None  # last seen at or after


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: str
    key: str
    title: str
    severity: str
    status: str
    summary: str
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    acknowledged_by: str | None
    resolved_by: str | None
    escalated_at: datetime | None
    slack_channel: str | None
    slack_ts: str | None
    github_issue: int | None
    links: list[dict[str, str]]
    # Where it went, fixed when it opened (routing rules, else the defaults); empty and
    # None on incidents opened before routing rules.
    channels: list[str] = field(default_factory=list)
    github_repo: str | None = None
    rule: str | None = None
    silence_id: str | None = None
    silenced_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class TimelineRow:
    at: datetime
    actor: str
    action: str
    detail: str


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    incident: IncidentRow
    timeline: list[TimelineRow]
    event_ids: list[str]


def list_incidents(
    engine: Engine, filters: IncidentFilter, before: str | None = None, limit: int = 100
) -> list[IncidentRow]:
    """Newest first; `before` is the last id of the previous page (ids are time-ordered)."""
    stmt = select(incidents)
    if filters.status is not None:
        stmt = stmt.where(incidents.c.status == filters.status)
    if filters.severity is not None:
        stmt = stmt.where(incidents.c.severity == filters.severity)
    if filters.since is not None:
        stmt = stmt.where(incidents.c.last_seen >= as_utc(filters.since))
    if before is not None:
        stmt = stmt.where(incidents.c.id < before)
    stmt = stmt.order_by(incidents.c.id.desc()).limit(clamp_limit(limit))
    with engine.connect() as conn:
        return [_incident(r) for r in conn.execute(stmt)]


def get_incident(
    engine: Engine, incident_id: str, events_shown: int = 100
) -> IncidentDetail | None:
    with engine.connect() as conn:
        row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            return None
        entries = conn.execute(
            select(timeline)
            .where(timeline.c.incident_id == incident_id)
            .order_by(timeline.c.at, timeline.c.id)
        ).all()
        fed = conn.execute(
            select(incident_events.c.event_id)
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.event_id.desc())
            .limit(events_shown)
        ).all()
    return IncidentDetail(
        _incident(row),
        [TimelineRow(as_utc(e.at), e.actor, e.action, e.detail) for e in entries],
        [r[0] for r in fed],
    )


def _incident(r: Any) -> IncidentRow:
    return IncidentRow(
        id=r.id,
        key=r.key,
        title=r.title,
        severity=r.severity,
        status=r.status,
        summary=r.summary,
        occurrences=r.occurrences,
        first_seen=as_utc(r.first_seen),
        last_seen=as_utc(r.last_seen),
        acknowledged_by=r.acknowledged_by,
        resolved_by=r.resolved_by,
        escalated_at=as_utc_or_none(r.escalated_at),
        slack_channel=r.slack_channel,
        slack_ts=r.slack_ts,
        github_issue=r.github_issue,
        links=list(r.links or []),
        channels=list(r.channels or []),
        github_repo=r.github_repo,
        rule=r.rule,
        silence_id=r.silence_id,
        silenced_until=as_utc_or_none(r.silenced_until),
    )
