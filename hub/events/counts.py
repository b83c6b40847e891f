"""Rows by status for scrapes and the console, at a cost that does not grow with history.

The statuses an event passes through (received, queued, processing) and `failed` hold few
events at any time, as `open` and `acknowledged` hold few incidents: those are counted
exactly on every read, one range of the status index each. `processed`, `ignored` and
`resolved` are the history, every row ever settled: counting them walks the whole index
(measured at 1,000,000 events: 150 ms on SQLite, 160-260 ms on PostgreSQL, growing with the
table), which a Prometheus scrape every 15 s, per API process, would pay again and again, on
the API's own core in the embedded mode. So the history is counted at most once per
`history_max_age_s` and read from memory in between."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Column, Connection, Engine, func, select

from hub.events.models import ACTIVE, Status
from hub.events.store import events

EVENTS_CURRENT = (*ACTIVE, Status.FAILED)
EVENTS_HISTORY = (Status.PROCESSED, Status.IGNORED)
HISTORY_MAX_AGE_S = 60.0  # HUB_METRICS_HISTORY_MAX_AGE_S


def by_status(conn: Connection, column: Column[str], statuses: Sequence[str]) -> dict[str, int]:
    """Rows in each of `statuses` (zero included), through the index on `column`."""
    stmt = select(column, func.count()).where(column.in_(statuses)).group_by(column)
    found = {str(status): int(n) for status, n in conn.execute(stmt)}
    return {str(s): found.get(str(s), 0) for s in statuses}


def current_event_counts(conn: Connection) -> dict[str, int]:
    """received, queued, processing and failed, exactly."""
    return by_status(conn, events.c.status, EVENTS_CURRENT)


class StatusCounts:
    """Every status's count: `current` exact at each read, `history` at most
    `history_max_age_s` old (0: exact too). One per table and process; thread-safe."""

    def __init__(
        self,
        engine: Engine,
        column: Column[str],
        current: Sequence[str],
        history: Sequence[str],
        *,
        history_max_age_s: float = HISTORY_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._column = column
        self._current = current
        self._history_statuses = history
        self._max_age_s = history_max_age_s
        self._clock = clock
        self._history: dict[str, int] | None = None
        self._counted_at = 0.0
        self._lock = threading.Lock()

    def read(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            current = by_status(conn, self._column, self._current)
            return current | self._history_counts(conn)

    def _history_counts(self, conn: Connection) -> dict[str, int]:
        with self._lock:  # two scrapes at once count the history once
            now = self._clock()
            if self._history is None or now - self._counted_at >= self._max_age_s:
                self._history = by_status(conn, self._column, self._history_statuses)
                self._counted_at = now
            return self._history
