"""Replay: run stored events through their workflows again, one or many, paced.

Workflows are idempotent, so a replay of a processed event changes nothing outside the hub,
and a replay of a failed one completes only what is missing. An effect that died (Slack
down for longer than its retries) is brought back by replaying the event that owed it.

A bulk replay is not a thundering herd: events are handed to the workers in small batches
spread over time (`HUB_REPLAY_PER_SECOND`), and each event's deadline is set past its turn,
so that the sweeper hands it over if the message is lost (or was never sent: the CLI of an
embedded hub has no way into that process's queue, and relies on exactly this)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Table, func, select, update

from hub.admin import audit
from hub.admin.models import Replay
from hub.events.ids import new_event_id
from hub.events.models import Status, as_utc, utcnow
from hub.events.queries import EventFilter
from hub.events.store import events
from hub.incidents.changes import effects, schedule_deliveries
from hub.incidents.models import EffectStatus
from hub.runtime.db import write
from hub.runtime.logs import bind
from hub.runtime.queue import EventQueue

log = logging.getLogger(__name__)

replays: Table = Replay.__table__  # type: ignore[attr-defined]

SETTLED = (Status.PROCESSED, Status.IGNORED, Status.FAILED)
CHUNK = 1000  # events per UPDATE: short transactions beside a busy ingress
BATCH = 50  # events per message to the workers

Verdict = Literal["queued", "not_found", "redacted", "active"]


@dataclass(frozen=True, slots=True)
class OneReplay:
    verdict: Verdict
    status: str | None = None


@dataclass(frozen=True, slots=True)
class BulkReplay:
    replay_id: str | None
    matched: int
    replayed: int
    # Matched but not taken: already on their way (received/queued/processing) or redacted.
    skipped: int
    paced_until: datetime | None


@dataclass(frozen=True, slots=True)
class Progress:
    replay_id: str
    actor: str
    filter: dict[str, Any]
    matched: int
    replayed: int
    created_at: datetime
    paced_until: datetime
    by_status: dict[str, int]

    @property
    def remaining(self) -> int:
        return sum(self.by_status.get(s, 0) for s in ("received", "queued", "processing"))


class Replayer:
    def __init__(
        self,
        engine: Engine,
        queue: EventQueue,
        *,
        per_second: float,
        grace_s: float,
        handoff: bool = True,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.per_second = max(per_second, 0.1)
        # How long past its turn an event may wait for its message before the sweeper
        # takes it; with no hand-off (see the module note) the sweeper takes it at its turn.
        self.grace_s = grace_s if handoff else 0.0
        self.handoff = handoff

    def replay_one(self, event_id: str, actor: str) -> OneReplay:
        now = utcnow()
        with write(self.engine) as conn:
            row = conn.execute(
                select(events.c.status, events.c.redacted_at).where(events.c.id == event_id)
            ).first()
            if row is None:
                return OneReplay("not_found")
            if row.redacted_at is not None:
                return OneReplay("redacted", row.status)
            if row.status not in SETTLED:
                return OneReplay("active", row.status)
            self._queue_rows(conn, [event_id], None, now + timedelta(seconds=self.grace_s))
            owing = _revive_effects(conn, [event_id], now)
            audit.record(conn, actor, "event.replay", event_id, previous_status=row.status)
        self._hand_off([event_id], 0)
        self._deliver(owing)
        with bind(event_id=event_id):
            log.info("event %s replayed by %s", event_id, actor)
        return OneReplay("queued", Status.QUEUED)

    def count(self, filters: EventFilter) -> int:
        with self.engine.connect() as conn:
            stmt = select(func.count()).select_from(events).where(*filters.clauses())
            return int(conn.execute(stmt).scalar_one())

    def replay_matching(self, filters: EventFilter, actor: str, *, dry_run: bool) -> BulkReplay:
        matched = self.count(filters)
        described = describe(filters)
        if dry_run:
            audit.write_entry(self.engine, actor, "replay.dry_run", "", filter=described,
                              matched=matched)  # fmt: skip
            return BulkReplay(None, matched, 0, 0, None)
        replay_id = "rpl_" + new_event_id()[4:]
        with bind(replay_id=replay_id):
            return self._replay_all(filters, actor, replay_id, matched, described)

    def _replay_all(
        self,
        filters: EventFilter,
        actor: str,
        replay_id: str,
        matched: int,
        described: dict[str, Any],
    ) -> BulkReplay:
        start = utcnow()
        taken = 0
        after = ""
        while True:
            ids = self._replayable(filters, after)
            if not ids:
                break
            after = ids[-1]
            taken += self._take(replay_id, ids, start, taken)
        paced_until = start + timedelta(seconds=taken / self.per_second)
        with write(self.engine) as conn:
            conn.execute(
                replays.insert(),
                {"id": replay_id, "actor": actor, "filter": described, "matched": matched,
                 "replayed": taken, "created_at": start, "paced_until": paced_until},
            )  # fmt: skip
            audit.record(conn, actor, "replay.start", replay_id, filter=described,
                         matched=matched, replayed=taken)  # fmt: skip
        log.info("replay %s by %s: %d matched, %d replayed", replay_id, actor, matched, taken)
        return BulkReplay(replay_id, matched, taken, matched - taken, paced_until)

    def progress(self, replay_id: str) -> Progress | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(replays).where(replays.c.id == replay_id)).first()
            if row is None:
                return None
            counts = conn.execute(
                select(events.c.status, func.count())
                .where(events.c.replay_id == replay_id)
                .group_by(events.c.status)
            ).all()
        return Progress(
            replay_id=row.id,
            actor=row.actor,
            filter=dict(row.filter or {}),
            matched=row.matched,
            replayed=row.replayed,
            created_at=as_utc(row.created_at),
            paced_until=as_utc(row.paced_until),
            by_status={str(s): int(n) for s, n in counts},
        )

    def _replayable(self, filters: EventFilter, after: str) -> list[str]:
        stmt = (
            select(events.c.id)
            .where(
                *filters.clauses(),
                events.c.id > after,
                events.c.status.in_(SETTLED),
                events.c.redacted_at.is_(None),
            )
            .order_by(events.c.id)
            .limit(CHUNK)
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(stmt)]

    def _take(self, replay_id: str, ids: list[str], start: datetime, before: int) -> int:
        """Queue one chunk; its events' turns follow those of the chunks before it."""
        last_turn = start + timedelta(seconds=(before + len(ids)) / self.per_second)
        with write(self.engine) as conn:
            taken = self._queue_rows(
                conn, ids, replay_id, last_turn + timedelta(seconds=self.grace_s)
            )
            owing = _revive_effects(conn, taken, start)
        for offset in range(0, len(taken), BATCH):
            turn_s = (before + offset) / self.per_second
            self._hand_off(taken[offset : offset + BATCH], int(turn_s * 1000))
        self._deliver(owing)
        return len(taken)

    def _queue_rows(
        self, conn: Connection, ids: Sequence[str], replay_id: str | None, deadline: datetime
    ) -> list[str]:
        # Status is tested again here: an event that moved since it was read is not taken.
        values: dict[str, Any] = {
            "status": Status.QUEUED,
            # The retry budget starts again: the cause is meant to be fixed now.
            "runs": 0,
            "updated_at": utcnow(),
            "deadline": deadline,
        }
        if replay_id is not None:
            values["replay_id"] = replay_id
        stmt = (
            update(events)
            .where(events.c.id.in_(ids), events.c.status.in_(SETTLED))
            .values(**values)
            .returning(events.c.id)
        )
        return sorted(r[0] for r in conn.execute(stmt))

    def _hand_off(self, ids: list[str], delay_ms: int) -> None:
        if not self.handoff or not ids:
            return
        try:
            self.queue.send(ids, delay_ms=delay_ms or None)
        except Exception as exc:  # the deadline set with the status brings them back
            log.warning("replay hand-off of %d events failed: %s", len(ids), exc)

    def _deliver(self, incident_ids: set[str | None]) -> None:
        if self.handoff:
            schedule_deliveries(self.queue, incident_ids)


def _revive_effects(conn: Connection, event_ids: Sequence[str], now: datetime) -> set[str | None]:
    """Dead effects these events owed become pending again; the incidents they belong to."""
    if not event_ids:
        return set()
    stmt = (
        update(effects)
        .where(effects.c.cause_event_id.in_(event_ids), effects.c.status == EffectStatus.DEAD)
        .values(status=EffectStatus.PENDING, failures=0, not_before=now, updated_at=now)
        .returning(effects.c.incident_id)
    )
    return {r[0] for r in conn.execute(stmt)}


def describe(filters: EventFilter) -> dict[str, Any]:
    """The filter as the audit log and the replay record keep it."""
    out: dict[str, Any] = {}
    for name in ("provider", "type", "status", "since", "until"):
        value = getattr(filters, name)
        if value is not None:
            out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
    return out
