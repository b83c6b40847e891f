"""The workers' statements are prepared once per connection on PostgreSQL, not parsed and
planned at every batch: reads end without the ROLLBACK at which psycopg forgets them all
(hub/runtime/db.py `read`)."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, bindparam, select, text

from hub.events.store import events
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
