"""The event store's write transactions are whole on both databases: a settle whose attempts
cannot be written leaves the event as it was, rather than `processed` with no attempts.

On SQLite this depends on how a statement starts: Python's sqlite3 opens its implicit
transaction only before INSERT, UPDATE, DELETE or REPLACE, so an UPDATE written as
`WITH ... UPDATE` ran on its own and committed at once (the admin API showed an event
`processed` with no attempts for a moment, and a failed insert could not take it back)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from hub.events.models import Status, utcnow
from hub.events.store import AttemptRecord, EventStore, NewEvent, attempts, events


def test_a_settle_whose_attempts_fail_changes_nothing(engine: Engine) -> None:
    store = EventStore(engine)
    body = b'{"zen": "Keep it logically awesome."}'
    (stored,) = store.insert([NewEvent("github", "d-1", "ping", {}, body)], Status.QUEUED)
    (claimed,) = store.claim([stored.event_id])
    assert claimed.id == stored.event_id
    now = utcnow()
    ok = AttemptRecord("handlers.system.acknowledge_ping", now, now, "ok")
    # An attempt row the database refuses (no outcome: NOT NULL): the whole settle must roll
    # back, the event's own update and the attempt written before it with it.
    broken = AttemptRecord("handlers.system.acknowledge_ping", now, now, None)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        store.settle(
            [stored.event_id],
            Status.PROCESSED,
            [(stored.event_id, ok), (stored.event_id, broken)],
        )
    with engine.connect() as conn:
        status = conn.execute(select(events.c.status).where(events.c.id == stored.event_id))
        assert status.scalar_one() == Status.PROCESSING
        assert conn.execute(select(attempts.c.id)).all() == []

    store.settle([stored.event_id], Status.PROCESSED, [(stored.event_id, ok)])
    with engine.connect() as conn:
        status = conn.execute(select(events.c.status).where(events.c.id == stored.event_id))
        assert status.scalar_one() == Status.PROCESSED
        assert len(conn.execute(select(attempts.c.id)).all()) == 1
