"""The numbers behind the console's overview, read from the hub's own tables.

Counts per time bucket are grouped in SQL by whole seconds since the epoch divided by the
bucket's width: one GROUP BY per chart, however many events, on both databases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Integer, cast, func, select

from hub.events.counts import current_event_counts
from hub.events.models import ACTIVE, Status, utcnow
from hub.events.rejections import rejections
from hub.events.store import events
from hub.incidents.changes import incidents
from hub.incidents.models import IncidentStatus


@dataclass(frozen=True, slots=True)
class Window:
    """A chart's span: `buckets` bars of `bucket_s` seconds each, ending now."""

    name: str
    bucket_s: int
    buckets: int

    @property
    def span(self) -> timedelta:
        return timedelta(seconds=self.bucket_s * self.buckets)


HOUR = Window("hour", 60, 60)
DAY = Window("day", 900, 96)


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per bucket (oldest first) for each key, and when the first bucket starts."""

    window: Window
    start: datetime
    by_key: dict[str, list[int]]


def per_bucket(engine: Engine, window: Window, now: datetime | None = None) -> dict[str, Series]:
    """Stored events by provider, and stored vs refused requests, over `window`."""
    end_bucket = int((now or utcnow()).timestamp()) // window.bucket_s
    first = end_bucket - window.buckets + 1
    start = datetime.fromtimestamp(first * window.bucket_s, tz=(now or utcnow()).tzinfo)
    stored = _grouped(
        engine, (events.c.received_at, events.c.provider, func.count()), window, start
    )
    refused_cols = (rejections.c.at, rejections.c.provider, func.sum(rejections.c.count))
    refused = _grouped(engine, refused_cols, window, start)
    by_provider = _dense(stored, first, window.buckets)
    outcome = {
        "stored": _total(by_provider, window.buckets),
        "refused": _total(_dense(refused, first, window.buckets), window.buckets),
    }
    return {
        "provider": Series(window, start, by_provider),
        "outcome": Series(window, start, outcome),
    }


def _grouped(
    engine: Engine, columns: tuple[Any, Any, Any], window: Window, start: datetime
) -> list[tuple[int, str, int]]:
    """(bucket number, key, amount) rows for `at >= start`; columns are (at, key, amount)."""
    at, key, amount = columns
    bucket: Any = _epoch(engine, at) / window.bucket_s  # integer division on SQLite
    if engine.dialect.name == "postgresql":
        bucket = func.floor(bucket)
    bucket = bucket.label("bucket")
    stmt = select(bucket, key, amount).where(at >= start).group_by(bucket, key)
    with engine.connect() as conn:
        return [(int(b), str(k), int(n or 0)) for b, k, n in conn.execute(stmt)]


def _epoch(engine: Engine, at: Any) -> ColumnElement[Any]:
    if engine.dialect.name == "postgresql":
        return func.extract("epoch", at)
    # SQLite keeps datetimes as text; strftime('%s') reads them as UTC, whole seconds.
    return cast(func.strftime("%s", at), Integer)


def _dense(rows: list[tuple[int, str, int]], first: int, count: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for bucket, key, n in rows:
        slot = bucket - first
        if 0 <= slot < count:
            out.setdefault(key, [0] * count)[slot] += n
    return dict(sorted(out.items()))


def _total(by_key: dict[str, list[int]], count: int) -> list[int]:
    return [sum(values[i] for values in by_key.values()) for i in range(count)]


@dataclass(frozen=True, slots=True)
class Snapshot:
    failed: int
    failed_last_day: int
    queue_depth: int
    open_by_severity: dict[str, int]


def snapshot(engine: Engine, now: datetime | None = None) -> Snapshot:
    """Failed events, the work queue's depth, and unresolved incidents by severity."""
    day_ago = (now or utcnow()) - timedelta(days=1)
    recent_failed = select(func.count()).where(
        events.c.status == Status.FAILED, events.c.updated_at >= day_ago
    )
    severities = (
        select(incidents.c.severity, func.count())
        # IN, not `!= resolved`: a range of the status index, not a walk over every incident.
        .where(incidents.c.status.in_([IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED]))
        .group_by(incidents.c.severity)
    )
    with engine.connect() as conn:
        counts = current_event_counts(conn)  # not the settled history: that walks every event
        failed_day = int(conn.execute(recent_failed).scalar_one())
        open_by = {str(s): int(n) for s, n in conn.execute(severities)}
    return Snapshot(
        failed=counts.get(Status.FAILED, 0),
        failed_last_day=failed_day,
        queue_depth=sum(counts.get(s, 0) for s in ACTIVE),
        open_by_severity=dict(sorted(open_by.items())),
    )
