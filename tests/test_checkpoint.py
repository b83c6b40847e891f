"""The embedded hub's SQLite WAL grows for as long as a sustained load lasts
(hub/runtime/checkpoint.py); once the hub has been idle for a whole checkpoint interval, a
WAL file left large by a burst is truncated, giving the disk back, without holding up
writers for long when a reader still needs it."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from hub.cli.migrate import migrate_quietly
from hub.events.batch_insert import BatchInsert, InsertPlan, NewEvent
from hub.events.models import Status, utcnow
from hub.runtime import checkpoint as cp
from hub.runtime.db import make_engine, write


@pytest.fixture
def database(tmp_path: Path, monkeypatch) -> Iterator[tuple[Engine, Path]]:
    monkeypatch.setattr(cp, "IDLE_TRUNCATE_BYTES", 1_000_000)
    path = tmp_path / "hub.db"
    migrate_quietly(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    yield engine, path
    engine.dispose()


def store(engine: Engine, batch_no: int) -> None:
    now = utcnow()
    batch = [
        NewEvent("stripe", f"evt_{batch_no}_{i}", "x.y", {}, b"x" * 2000, routed=False)
        for i in range(16)
    ]
    with write(engine) as conn:
        BatchInsert("sqlite")(conn, InsertPlan.of(batch, Status.QUEUED, now, now))


def burst(engine: Engine, batches: int = 200) -> None:
    for batch_no in range(batches):  # ~7 MB of WAL
        store(engine, batch_no)


def wal_size(path: Path) -> int:
    return os.path.getsize(f"{path}-wal")


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())


def test_a_wal_left_large_by_a_burst_is_truncated_once_the_hub_is_idle(database):
    engine, path = database
    tick = cp.wal_keeper(engine)
    burst(engine)
    tick()  # copies it all back; nothing says yet that the burst is over
    assert wal_size(path) > 5_000_000
    tick()  # nothing written since: idle
    assert wal_size(path) == 0
    assert count(engine) == 3200
    store(engine, 1000)  # and the hub writes on
    assert count(engine) == 3216


def test_a_wal_still_written_to_is_not_truncated(database):
    engine, path = database
    tick = cp.wal_keeper(engine)
    burst(engine)
    tick()
    store(engine, 1000)  # a commit between two passes
    tick()
    assert wal_size(path) > 5_000_000


def test_a_reader_using_the_wal_holds_the_truncate_up_only_briefly(database):
    """The write gate is held while truncating: a reader's open snapshot must not keep it
    (and every webhook's commit behind it) for SQLite's usual 30 s."""
    engine, path = database
    tick = cp.wal_keeper(engine)
    burst(engine)
    reader = sqlite3.connect(path)
    try:
        reader.execute("BEGIN")
        # A snapshot held open that reads the WAL's frames (taken before they are back).
        assert reader.execute("SELECT count(*) FROM events").fetchone() == (3200,)
        tick()
        started = time.monotonic()
        tick()
        assert time.monotonic() - started < 2.0
        store(engine, 1000)  # the gate is free again
    finally:
        reader.close()
    assert wal_size(path) > 5_000_000
    tick()
    tick()
    assert wal_size(path) == 0
