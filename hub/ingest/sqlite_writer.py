"""The ingress's SQLite writes, on one connection the commit thread keeps.

Through SQLAlchemy each batch paid a pool checkout and check-in and a Connection's
transaction: 73 us a batch against 2 us for the same statement and commit on a kept sqlite3
connection (measured here), several microseconds an event at a group commit's batches, all
of it Python holding the GIL the event loop needs. The connection comes from the engine's
pool, so it has the same PRAGMAs as every other; SQLite's write gate (hub/runtime/db.py)
is taken as for any write."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

from hub.events.batch_insert import InsertPlan, sqlite_existing, sqlite_insert
from hub.events.models import Status
from hub.events.store import NewEvent, Stored
from hub.runtime.db import gated

log = logging.getLogger(__name__)


class SqliteWriter:
    """`writer(batch)` stores a batch in one transaction; called from one thread at a time."""

    def __init__(
        self,
        engine: Engine,
        plan: Callable[[Sequence[NewEvent], Status], InsertPlan],
        status: Status,
    ) -> None:
        self._engine = engine
        self._plan = plan
        self._status = status
        self._conn: Any = None  # the pool's proxy of a sqlite3 connection, kept

    def __call__(self, batch: Sequence[NewEvent]) -> list[Stored]:
        plan = self._plan(batch, self._status)
        with gated(self._engine):
            conn = self._conn if self._conn is not None else self._engine.raw_connection()
            self._conn = None  # kept again only once this batch is committed
            try:
                cursor = conn.cursor()
                try:
                    inserted = sqlite_insert(cursor, plan)
                    missing = plan.missing(inserted)
                    existing = sqlite_existing(cursor, missing) if missing else {}
                finally:
                    cursor.close()
                conn.commit()
            except BaseException:
                # Rolled back, and not reused: a connection whose batch failed (a full disk,
                # an I/O error) is closed and the next batch opens another.
                _discard(conn)
                raise
            self._conn = conn
        return plan.answers(inserted, existing)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _discard(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:
        log.debug("rolling back a failed ingest batch", exc_info=True)
    conn.invalidate()
