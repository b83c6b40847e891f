"""What the admin surface keeps: the audit trail, scoped API tokens, and bulk replays."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from hub.events.models import JSONType, UTCDateTime


class AuditEntry(SQLModel, table=True):
    """One admin action. `actor` is a token's name, never the token."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    target: str = Field(default="", max_length=300)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class ApiToken(SQLModel, table=True):
    """A token made by `hub tokens create`. Only its SHA-256 is kept: a leaked database
    does not leak working tokens."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    digest: str = Field(unique=True, max_length=64)
    # The first characters, so an admin can tell tokens apart without the secret.
    prefix: str = Field(max_length=16)
    scopes: list[str] = Field(default_factory=list, sa_type=JSONType)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(max_length=200)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Replay(SQLModel, table=True):
    """A bulk replay: the filter it was asked with, how many it took, who asked."""

    __tablename__ = "replays"

    id: str = Field(primary_key=True, max_length=40)
    actor: str = Field(max_length=200)
    filter: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    matched: int = 0
    replayed: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    # When the last paced batch is due to be handed to the workers.
    paced_until: datetime = Field(sa_type=UTCDateTime)
