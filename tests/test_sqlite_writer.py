"""The embedded ingress's writer (hub/ingest/sqlite_writer.py) keeps one SQLite connection
between batches: a batch is still all or nothing, a failed one leaves no trace and does not
stop the next, and a redelivery is answered with the id stored the first time."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, text

from hub.events.models import Status
from hub.events.store import EventStore, NewEvent, events
from hub.ingest.sqlite_writer import SqliteWriter
from hub.runtime.db import make_engine, write


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def ev(delivery_id: str) -> NewEvent:
    body = b'{"id": "%s", "type": "payment_intent.succeeded"}' % delivery_id.encode()
    return NewEvent("stripe", delivery_id, "payment_intent.succeeded", {}, body, routed=False)


def stored_rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        n_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
        n_bodies = conn.execute(text("SELECT count(*) FROM event_bodies")).scalar_one()
    return n_events, n_bodies


def test_batches_are_stored_whole_and_a_redelivery_gets_the_first_id(engine: Engine) -> None:
    writer = SqliteWriter(engine, EventStore(engine).plan_insert, Status.QUEUED)
    first = writer([ev("evt_a"), ev("evt_b")])
    assert [s.duplicate for s in first] == [False, False]
    again = writer([ev("evt_c"), ev("evt_a"), ev("evt_c")])
    assert [s.duplicate for s in again] == [False, True, True]
    assert again[1].event_id == first[0].event_id
    assert again[2].event_id == again[0].event_id
    assert stored_rows(engine) == (3, 3)
    writer.close()


def test_a_failed_batch_leaves_nothing_and_the_next_one_is_stored(engine: Engine) -> None:
    with engine.begin() as conn:  # a write that fails mid-batch, as a full disk would
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON event_bodies "
            "WHEN NEW.event_id IN (SELECT id FROM events WHERE delivery_id = 'evt_boom') "
            "BEGIN SELECT RAISE(ABORT, 'no space left'); END"
        )
    writer = SqliteWriter(engine, EventStore(engine).plan_insert, Status.QUEUED)
    writer([ev("evt_before")])
    with pytest.raises(Exception, match="no space left"):
        writer([ev("evt_ok"), ev("evt_boom")])
    # Neither event of the failed batch (the events insert had gone through) nor a body.
    assert stored_rows(engine) == (1, 1)
    # The write gate was let go: another writer gets in at once.
    done = threading.Event()

    def other() -> None:
        with write(engine) as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse")
        done.set()

    threading.Thread(target=other, daemon=True).start()
    assert done.wait(5)
    (ok, boom) = writer([ev("evt_ok"), ev("evt_boom")])
    assert not ok.duplicate and not boom.duplicate
    assert stored_rows(engine) == (3, 3)
    writer.close()
