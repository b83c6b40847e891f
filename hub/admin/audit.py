"""The audit trail: every admin action, who did it (a token's name), on what, with what.

An entry is written in the same transaction as the action where there is one, so the trail
never claims an action that did not happen, nor misses one that did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, select

from hub.admin.models import AuditEntry
from hub.events.models import as_utc, utcnow
from hub.events.queries import clamp_limit
from hub.runtime.db import write

audit_log: Table = AuditEntry.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def record(conn: Connection, actor: str, action: str, target: str = "", **detail: Any) -> None:
    conn.execute(
        insert(audit_log),
        {"at": utcnow(), "actor": actor[:200], "action": action, "target": target[:300],
         "detail": detail},
    )  # fmt: skip


def write_entry(engine: Engine, actor: str, action: str, target: str = "", **detail: Any) -> None:
    """An entry for an action that has no transaction of its own (a refused replay...)."""
    with write(engine) as conn:
        record(conn, actor, action, target, **detail)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_entries(
    engine: Engine, filters: AuditFilter, before: int | None = None, limit: int = 100
) -> list[AuditRow]:
    """Newest first; `before` is the id of the last entry of the previous page."""
    stmt = select(audit_log)
    if filters.actor is not None:
        stmt = stmt.where(audit_log.c.actor == filters.actor)
    if filters.action is not None:
        stmt = stmt.where(audit_log.c.action == filters.action)
    if filters.since is not None:
        stmt = stmt.where(audit_log.c.at >= as_utc(filters.since))
    if filters.until is not None:
        stmt = stmt.where(audit_log.c.at < as_utc(filters.until))
    if before is not None:
        stmt = stmt.where(audit_log.c.id < before)
    stmt = stmt.order_by(audit_log.c.id.desc()).limit(clamp_limit(limit))
    with engine.connect() as conn:
        return [
            AuditRow(r.id, as_utc(r.at), r.actor, r.action, r.target, dict(r.detail or {}))
            for r in conn.execute(stmt)
        ]
