"""An embedded hub's queue lives in memory: what it held when the process died must be run
when the next process starts, not five minutes later."""

from __future__ import annotations

import time

from sqlalchemy import select
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.events.models import Status
from hub.events.store import EventStore, NewEvent, events
from hub.runtime.db import make_engine


def test_events_left_queued_by_a_dead_process_run_at_next_start(settings):
    engine = make_engine(settings.database_url)
    store = EventStore(engine)
    left = [
        NewEvent("github", "d-ping", "ping", {}, b'{"zen": "z"}'),
        NewEvent("stripe", "evt_left", "customer.updated", {}, b"{}"),
    ]
    ids = [s.event_id for s in store.insert(left, Status.QUEUED)]
    claimed = store.claim([ids[0]])  # the dead process had started this one
    assert [c.id for c in claimed] == [ids[0]]

    started = time.monotonic()
    with TestClient(create_app(settings)):
        while time.monotonic() - started < 10:
            with engine.connect() as conn:
                rows = dict(conn.execute(select(events.c.id, events.c.status)).all())
            if rows == {ids[0]: "processed", ids[1]: "ignored"}:
                break
            time.sleep(0.05)
    assert rows == {ids[0]: "processed", ids[1]: "ignored"}
    # Well inside the 300 s queued deadline and the 3 s lease: recovery ran at start.
    assert time.monotonic() - started < 3
    engine.dispose()
