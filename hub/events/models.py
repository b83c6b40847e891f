"""Tables. Events are stored once per (provider, delivery id); attempts keep every run."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Index, LargeBinary, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

JSONType = JSON().with_variant(JSONB(), "postgresql")
UTCDateTime = DateTime(timezone=True)


class Status(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    PROCESSING = "processing"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


ACTIVE = (Status.RECEIVED, Status.QUEUED, Status.PROCESSING)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """The one UTC rule. Naive means UTC: SQLite stores datetimes as text without their
    offset and hands them back naive, and everything the hub stores is UTC. An aware value
    is converted, so what a caller sends (`since=...+02:00`) binds and compares as UTC on
    both databases. Raises OverflowError for a value that is out of range once in UTC."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def as_utc_or_none(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("provider", "delivery_id", name="uq_events_provider_delivery"),
        Index("ix_events_status_id", "status", "id"),
        # Only active events carry a deadline, so the sweeper's range scan stays small; partial,
        # so the ingest path's `ignored` rows (NULL) and settled ones cost this index nothing.
        # `deadline < ?` implies NOT NULL, so both planners use it for the sweeps.
        Index(
            "ix_events_deadline",
            "deadline",
            sqlite_where=text("deadline IS NOT NULL"),
            postgresql_where=text("deadline IS NOT NULL"),
        ),
        # Partial: the ingest path inserts NULL here and must not pay for this index.
        Index(
            "ix_events_replay_id",
            "replay_id",
            sqlite_where=text("replay_id IS NOT NULL"),
            postgresql_where=text("replay_id IS NOT NULL"),
        ),
    )

    # Time-ordered ids ("evt_" + ULID): the primary key is also the listing order and cursor.
    id: str = Field(primary_key=True, max_length=40)
    provider: str = Field(max_length=32)
    delivery_id: str = Field(max_length=200)
    type: str = Field(max_length=200)
    status: str = Field(default=Status.RECEIVED, max_length=16)
    received_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    # When the sweeper should take the event back if it has not moved on; NULL once settled.
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    runs: int = 0
    # The worker consumer whose claim holds the event (`processing`): if that worker's
    # process dies, its supervisor hands the event back at once instead of after the lease.
    claimed_by: str | None = Field(default=None, max_length=40)
    # The bulk replay that last queued this event: progress is counted by it.
    replay_id: str | None = Field(default=None, max_length=40)
    # Retention emptied the body (metadata, attempts and audit stay); it cannot be replayed.
    redacted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    headers: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class EventBody(SQLModel, table=True):
    """An event's body, the bytes as received, in a row of its own: written with the event,
    read by the workers and the admin tools, emptied by retention, otherwise never changed.
    The event's row changes at every step (claimed, settled, replayed); SQLite rewrites a
    whole row for any change and PostgreSQL writes a new version of it, so a body kept there
    (2-4 KB a Stripe event as sent, ~20 KB a GitHub workflow run) was copied at every step:
    two status changes of 4 KB-body rows cost SQLite 22-24 us and 10 KB of WAL an event,
    against 5 us and 0.8 KB with the body apart (migration 0010)."""

    __tablename__ = "event_bodies"

    # An event's id, with no foreign key (events are never deleted; migration 0011).
    event_id: str = Field(primary_key=True, max_length=40)
    body: bytes = Field(sa_type=LargeBinary)


class Attempt(SQLModel, table=True):
    __tablename__ = "attempts"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True, max_length=40)  # no foreign key: migration 0011
    workflow: str = Field(max_length=200)
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: str = Field(max_length=16)  # "ok" | "error" | "stale" | "unfetched"
    error: str | None = Field(default=None, sa_type=Text)
    traceback: str | None = Field(default=None, sa_type=Text)
    # Why a run changed nothing on purpose: for `stale`, what had superseded the event.
    detail: str | None = Field(default=None, sa_type=Text)
    # The routing rules that decided this run (comma-separated); None: the catalogue alone.
    rule: str | None = Field(default=None, max_length=300)


class Route(SQLModel, table=True):
    """A kind of event ("provider:type") that some deployed worker has a workflow for.

    Workers publish their routing table here when they start; the API reads it to store
    every other kind as `ignored` at once, without a trip through the queue. A kind is never
    deleted by the hub: one that stays after its workflow is gone only costs that trip."""

    __tablename__ = "routes"

    kind: str = Field(primary_key=True, max_length=240)
    # First published: events of this kind ignored at ingest since then (by an API that had
    # not yet seen it) are taken back once, when `caught_up_at` is set.
    published_at: datetime = Field(sa_type=UTCDateTime)
    caught_up_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Rejection(SQLModel, table=True):
    """A webhook request the ingress refused, for `GET /admin/rejections`: what a sender was
    told and from where, never its body, a header value, a signature or a secret.

    Written in batches off the hot path (hub/events/rejections.py) and capped: the newest
    rows are kept, older ones pruned in batches. A row with `count` > 1 stands for that many
    refusals of one kind whose lines were held back by the log's rate limit."""

    __tablename__ = "rejections"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    provider: str = Field(max_length=32)
    # The endpoint's path under /webhooks/ as the metrics label it; `unknown` for no endpoint.
    endpoint: str = Field(max_length=64)
    status: int
    # One vocabulary: the answer's `error`, the metric's `outcome`, the log line's `error`.
    error: str = Field(max_length=32)
    reason: str = Field(sa_type=Text)
    client: str = Field(max_length=64)
    count: int = 1
