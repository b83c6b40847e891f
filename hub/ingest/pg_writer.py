"""The ingress's PostgreSQL writes, on the event loop (psycopg's async connections).

A commit handed to a thread costs the hand-off and a GIL hand-back that lands in the answer
times when the API shares its core; awaited here, the loop keeps reading requests while
PostgreSQL works. Each batch is one autocommit statement (the INSERT is atomic by itself),
so a commit is one round trip instead of BEGIN, INSERT, COMMIT."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from sqlalchemy import make_url

from hub.events.batch_insert import PG_EXISTING, InsertPlan, pg_existing_params
from hub.events.models import Status
from hub.events.store import NewEvent, Stored

log = logging.getLogger(__name__)


def conninfo(database_url: str) -> str:
    """libpq's form of the SQLAlchemy URL (`postgresql+psycopg://...`)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


class AsyncPostgresWriter:
    """`await writer(batch)` stores a batch; one connection per commit in flight."""

    def __init__(
        self,
        dsn: str,
        plan: Callable[[Sequence[NewEvent], Status], InsertPlan],
        status: Status,
        *,
        timeout_s: float = 10.0,
        connect_timeout_s: int = 3,
    ) -> None:
        self._dsn = dsn
        self._plan = plan
        self._status = status
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._idle: list[psycopg.AsyncConnection[tuple[Any, ...]]] = []

    async def __call__(self, batch: Sequence[NewEvent]) -> list[Stored]:
        plan = self._plan(batch, self._status)
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            # A database that stops answering (not refusing) must not hold senders forever:
            # past the timeout they get 503 and retry.
            async with asyncio.timeout(self._timeout_s):
                async with psycopg.AsyncRawCursor(conn) as cur:
                    await cur.execute(*plan.pg_insert())
                    inserted = {row[0] for row in await cur.fetchall()}
                    existing = {}
                    if missing := plan.missing(inserted):
                        await cur.execute(PG_EXISTING, pg_existing_params(missing))
                        existing = {(p, d): i for p, d, i in await cur.fetchall()}
        except BaseException:
            # A connection that failed or was cut off mid-statement is not reused.
            await _close(conn)
            raise
        self._idle.append(conn)
        return plan.answers(inserted, existing)

    async def _connect(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        return await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, connect_timeout=self._connect_timeout_s
        )

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close(conn)


async def _close(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
    try:
        await conn.close()
    except Exception:  # already broken: nothing to release
        log.debug("closing a broken ingest connection", exc_info=True)
