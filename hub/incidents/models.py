"""Incidents, what fed them, what happened to them, and the side effects they owe.

The `effects` table is an outbox: a workflow records the Slack posts and GitHub calls an
incident needs in the same transaction as the change itself, and a delivery actor performs
them afterwards. A change is therefore never lost between the commit and the call, and the
outbox row (keyed by meaning, `dedupe`) is what makes a retried or replayed workflow a no-op.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Text, text
from sqlmodel import Field, SQLModel

from hub.events.models import JSONType, UTCDateTime


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class EffectStatus(StrEnum):
    PENDING = "pending"
    # The call may have been made: a delivery that finds this state (its predecessor died
    # between the call and the commit) looks for the result before calling again.
    ATTEMPTING = "attempting"
    DONE = "done"
    DEAD = "dead"  # a permanent error, or retries exhausted: visible, replayable


_LIVE = text("status != 'resolved'")


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"
    __table_args__ = (
        # One live incident per grouping key: concurrent workers cannot open two.
        Index(
            "uq_incidents_live_key", "key", unique=True, sqlite_where=_LIVE, postgresql_where=_LIVE
        ),
        Index("ix_incidents_key_id", "key", "id"),
        Index("ix_incidents_status_id", "status", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    key: str = Field(max_length=300)
    title: str = Field(max_length=300)
    severity: str = Field(max_length=8)
    status: str = Field(max_length=16)
    summary: str = Field(default="", sa_type=Text)
    links: list[dict[str, str]] = Field(default_factory=list, sa_type=JSONType)
    source: str = Field(max_length=32)
    occurrences: int = 1
    first_seen: datetime = Field(sa_type=UTCDateTime)
    last_seen: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_by: str | None = Field(default=None, max_length=200)
    resolved_by: str | None = Field(default=None, max_length=200)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    slack_channel: str | None = Field(default=None, max_length=100)
    slack_ts: str | None = Field(default=None, max_length=40)
    github_issue: int | None = None
    # Bumped by every change the Slack message shows, so an update knows if it is current.
    revision: int = 0
    # Held by the worker delivering this incident's effects, so they go out in order.
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Where it goes, fixed when it opens (routing rules, else the defaults): the Slack
    # channels by configured name (the first holds the message `slack_ts` names), the GitHub
    # repository, who an escalation mentions. NULL on incidents opened before rules existed.
    channels: list[str] | None = Field(default=None, sa_type=JSONType)
    github_repo: str | None = Field(default=None, max_length=200)
    mention: str | None = Field(default=None, max_length=200)
    # The messages in channels after the first: [{"channel", "channel_id", "ts"}].
    mirrors: list[dict[str, str]] | None = Field(default=None, sa_type=JSONType)
    # The routing rules that decided it (comma-separated), None for the catalogue alone.
    rule: str | None = Field(default=None, max_length=300)
    # Opened under a silence: nothing is posted before `silenced_until` (then only if live).
    silence_id: str | None = Field(default=None, max_length=40)
    silenced_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IncidentKey(SQLModel, table=True):
    """The newest change each grouping key reflects, in the provider's own order (a run
    number, a status rank, a timestamp the provider set). Kept after its incident resolves,
    and written even when a resolve finds nothing to resolve: that tombstone is what makes
    an older change delivered late (or replayed) stale instead of news."""

    __tablename__ = "incident_keys"

    key: str = Field(primary_key=True, max_length=300)
    version: list[int] = Field(sa_type=JSONType)
    change: str = Field(max_length=16)  # "open" | "resolve": what that newest change was
    event_id: str | None = Field(default=None, max_length=40)  # the event that carried it
    note: str = Field(default="", sa_type=Text)  # its timeline line, to say what superseded
    incident_id: str | None = Field(default=None, max_length=40)  # the incident it fed
    updated_at: datetime = Field(sa_type=UTCDateTime)


class IncidentEvent(SQLModel, table=True):
    """Which events fed which incident. An event applied once is never applied again."""

    __tablename__ = "incident_events"

    event_id: str = Field(primary_key=True, max_length=40)  # no foreign key: migration 0011
    incident_id: str = Field(foreign_key="incidents.id", index=True, max_length=40)
    at: datetime = Field(sa_type=UTCDateTime)


class TimelineEntry(SQLModel, table=True):
    __tablename__ = "incident_timeline"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incidents.id", index=True, max_length=40)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=32)
    detail: str = Field(default="", sa_type=Text)
    # What made this change (an event id, an admin request): applying it again is a no-op.
    dedupe: str = Field(unique=True, max_length=200)


class Effect(SQLModel, table=True):
    __tablename__ = "effects"
    __table_args__ = (Index("ix_effects_status_due", "status", "not_before"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str | None = Field(
        default=None, foreign_key="incidents.id", index=True, max_length=40
    )
    kind: str = Field(max_length=32)
    # The event whose processing recorded this effect (None for a button or an admin): an
    # effect that dies fails that event, and replaying the event brings the effect back.
    cause_event_id: str | None = Field(default=None, index=True, max_length=40)
    dedupe: str = Field(unique=True, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    status: str = Field(default=EffectStatus.PENDING, max_length=16)
    failures: int = 0
    not_before: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
