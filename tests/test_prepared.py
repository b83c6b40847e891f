"""Statements are prepared once per connection on PostgreSQL, not parsed and planned at every
batch: the workers' reads end without the ROLLBACK at which psycopg forgets them all
(hub/runtime/db.py `read`), and the ingress's INSERT keeps one set of parameter types."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, bindparam, select, text

from hub.events.batch_insert import InsertPlan, NewEvent
from hub.events.models import Status
from hub.events.store import events
from hub.ingest.pg_writer import AsyncPostgresWriter, conninfo
from hub.runtime.db import make_engine, read, write

pytestmark = pytest.mark.services


def prepared(conn: Connection) -> list[str]:
    rows = conn.execute(text("SELECT statement FROM pg_prepared_statements"))
    return [row[0] for row in rows]


def test_a_read_repeated_batch_after_batch_is_prepared_and_stays_so(postgres_url):
    engine = make_engine(postgres_url, pool_size=1)  # one connection: the same session
    lookup = select(events.c.id).where(events.c.id == bindparam("p_id"))
    try:
        for n in range(8):
            with read(engine) as conn:
                conn.execute(lookup, {"p_id": f"evt_{n}"}).all()
            with write(engine) as conn:  # a batch's write transaction between its reads
                conn.execute(text("SELECT 1"))
        with read(engine) as conn:
            statements = prepared(conn)
        assert any("FROM events" in s and "events.id = $1" in s for s in statements), statements
    finally:
        engine.dispose()


def test_the_ingress_insert_is_prepared_once_whatever_mix_of_routed_and_ignored_events(
    postgres_url,
):
    """The ingress's INSERT goes out as one statement text per batch size. Mixed traffic
    (events that run workflows, with a deadline, and ignored ones, with none) must still be
    one prepared statement per size: parsed and planned once, not at every batch."""
    counter = itertools.count()

    def plan(batch, status):
        now = datetime.now(UTC)
        return InsertPlan.of(batch, status, now, now + timedelta(seconds=30))

    def event(routed: bool) -> NewEvent:
        n = next(counter)
        return NewEvent("stripe", f"evt_{n}", "x.y", {"a": "b"}, b"{}", routed=routed)

    async def run() -> list[str]:
        writer = AsyncPostgresWriter(conninfo(postgres_url), plan, Status.QUEUED)
        try:
            # Eight batches of four, each with its own pattern of routed and ignored rows.
            for pattern in range(8):
                batch = [event(bool(pattern >> bit & 1)) for bit in range(4)]
                stored = await writer(batch)
                assert not any(s.duplicate for s in stored)
            conn = writer._idle[0]  # one batch at a time: the one connection it opened
            cur = await conn.execute("SELECT statement FROM pg_prepared_statements")
            return [row[0] async for row in cur]
        finally:
            await writer.close()

    statements = asyncio.run(run())
    inserts = [s for s in statements if "INSERT INTO events" in s]
    # psycopg prepares a statement on its sixth run: the same statement at every batch.
    assert len(inserts) == 1, statements
