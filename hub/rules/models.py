"""The rules' tables: reloads (which file every process should be using) and silences."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from hub.events.models import UTCDateTime


class RulesReload(SQLModel, table=True):
    """A valid rules file someone asked every process to use (`POST /admin/rules/reload`,
    SIGHUP, `hub rules reload`). Processes watch the newest id and re-read their file when it
    moves, so one request reaches every API and worker process within seconds."""

    __tablename__ = "rules_reloads"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=200)
    hash: str = Field(max_length=64)
    source: str = Field(default="", max_length=500)


class Silence(SQLModel, table=True):
    """A maintenance window: incidents whose event matches `match` (CEL) between the two
    times are tracked and counted but not posted; posted when it ends if still live."""

    __tablename__ = "silences"

    id: str = Field(primary_key=True, max_length=40)
    match: str = Field(sa_type=Text)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime, index=True)
    reason: str = Field(default="", sa_type=Text)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expired_by: str | None = Field(default=None, max_length=200)
