"""Silences (maintenance windows), shared by the admin API, the CLI and the workers.

An incident opened while a silence matches its event is tracked and counted as usual, but
its Slack post and GitHub issue are owed for when the silence ends (`not_before`): the outbox
then delivers them if the incident is still live, and skips them if it resolved meanwhile.
Expiring a silence early brings those deliveries forward. Resolves are never silenced."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from hub.admin import audit
from hub.events.models import as_utc, utcnow
from hub.incidents.changes import effects, incidents, schedule_deliveries
from hub.incidents.models import EffectStatus, IncidentStatus
from hub.rules.compiled import Condition, LazyEnv, Miss, compile_where, matches
from hub.rules.models import Silence
from hub.runtime.db import read, write
from hub.runtime.queue import EventQueue

silences = Silence.__table__  # type: ignore[attr-defined]
# What a silence holds back: the announcements. Updates and thread replies wait behind the
# post in the outbox's order, and are skipped with it.
DEFERRED = ("slack.post", "github.issue")


class SilenceError(ValueError):
    """A silence that cannot be made or found; the message says why."""


@dataclass(frozen=True)
class SilenceRow:
    id: str
    match: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    expired_by: str | None

    def state(self, now: datetime) -> str:
        if self.expired_by is not None or self.ends_at <= now:
            return "expired"
        return "active" if self.starts_at <= now else "pending"


@functools.lru_cache(maxsize=256)
def compile_match(text: str) -> Condition:
    """A silence's `match`, compiled as a rule's `where` is (same variables, same errors)."""
    problems: list[str] = []

    def error(_path: tuple[str, ...], message: str, _offset: int = 0) -> None:
        problems.append(message.removeprefix("match: where: "))

    program = compile_where(text, ("match",), error)
    if problems:
        raise SilenceError("match: " + "; ".join(problems))
    return Condition(None, None, None, program, text)


def add(
    engine: Engine,
    actor: str,
    match: str,
    ends_at: datetime,
    *,
    starts_at: datetime | None = None,
    reason: str = "",
) -> SilenceRow:
    now = utcnow()
    starts = as_utc(starts_at) if starts_at is not None else now
    ends = as_utc(ends_at)
    if ends <= now:
        raise SilenceError("ends_at is in the past: such a silence would silence nothing")
    if ends <= starts:
        raise SilenceError("ends_at must be after starts_at")
    compile_match(match)  # or SilenceError naming what is wrong with it
    row = SilenceRow(f"sil_{secrets.token_hex(8)}", match, starts, ends, reason, actor[:200],
                     now, None)  # fmt: skip
    with write(engine) as conn:
        conn.execute(insert(silences), row.__dict__)
        audit.record(conn, actor, "silence.add", row.id, match=match, reason=reason,
                     starts_at=starts.isoformat(), ends_at=ends.isoformat())  # fmt: skip
    return row


def listed(engine: Engine, include_expired: bool = False) -> list[SilenceRow]:
    stmt = select(silences).order_by(silences.c.starts_at.desc(), silences.c.id)
    if not include_expired:
        stmt = stmt.where(silences.c.ends_at > utcnow(), silences.c.expired_by.is_(None))
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(stmt)]


def expire(engine: Engine, queue: EventQueue, silence_id: str, actor: str) -> SilenceRow:
    """End a silence now; incidents it held that are still live are posted at once."""
    now = utcnow()
    with write(engine) as conn:
        found = conn.execute(select(silences).where(silences.c.id == silence_id)).first()
        if found is None:
            raise SilenceError(f"no silence {silence_id}")
        row = _row(found)
        if row.state(now) == "expired":
            return row
        conn.execute(update(silences).where(silences.c.id == silence_id)
                     .values(ends_at=now, expired_by=actor[:200]))  # fmt: skip
        held = conn.execute(
            update(incidents)
            .where(
                incidents.c.silence_id == silence_id,
                incidents.c.status != IncidentStatus.RESOLVED,
            )
            .values(silenced_until=now)
            .returning(incidents.c.id)
        ).scalars().all()  # fmt: skip
        if held:
            conn.execute(
                update(effects)
                .where(effects.c.incident_id.in_(held), effects.c.kind.in_(DEFERRED),
                       effects.c.status == EffectStatus.PENDING)
                .values(not_before=now)
            )  # fmt: skip
        audit.record(conn, actor, "silence.expire", silence_id, released=len(held))
    schedule_deliveries(queue, held)
    return SilenceRow(**{**row.__dict__, "ends_at": now, "expired_by": actor[:200]})


def active(engine: Engine) -> list[SilenceRow]:
    now = utcnow()
    stmt = select(silences).where(
        silences.c.starts_at <= now, silences.c.ends_at > now, silences.c.expired_by.is_(None)
    )
    with read(engine) as conn:
        return [_row(r) for r in conn.execute(stmt)]


def matching(found: list[SilenceRow], facts: Mapping[str, Any]) -> SilenceRow | None:
    """The silence (the one ending last) whose match the event meets, if any. A match that
    cannot be evaluated for this event (a missing field) does not silence it."""
    if not found:
        return None
    env = LazyEnv(facts)
    hits = []
    for silence in found:
        try:
            if matches(silence.id, compile_match(silence.match), facts, env):
                hits.append(silence)
        except (Miss, SilenceError):
            continue
    return max(hits, key=lambda s: s.ends_at) if hits else None


def _row(r: Any) -> SilenceRow:
    return SilenceRow(r.id, r.match, as_utc(r.starts_at), as_utc(r.ends_at), r.reason,
                      r.created_by, as_utc(r.created_at), r.expired_by)  # fmt: skip
