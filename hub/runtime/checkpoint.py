"""SQLite's WAL copied back into the database file, off the hot path.

Checkpoints run here, never inside a webhook's commit: with auto-checkpointing, the commit
that crosses 1000 WAL pages does the copy (and its fsync) itself while holding the write
lock, and every webhook waiting on it stalls.

Known and not solved: a checkpoint copies the frames there were when it began, and SQLite
writes the WAL from its beginning again only when a writer begins while every frame has been
copied back. Under a steady stream of commits some always arrive during the pass, so under a
sustained load the WAL file grows for as long as the load lasts (577 MB in one `make bench`
ingest run; `hub_sqlite_wal_bytes` on /metrics). Versions that made it start over under load
were taken back: on 12-04 one stalled the embedded drain, on 12-06 another's syncs put
commits behind the filesystem's journal (p99 7.5 -> 16-31 ms at 0% routed), and cutting the
file back at the first commit after a pause (journal_size_limit) put that commit's 100 ms
truncate into the answer times (p99 56-121 ms): docs/benchmarks.md.

What is done: once the hub has written nothing for a whole interval and every frame is back
in the database file, a WAL file left large by a burst is truncated here, holding the write
gate (~100 ms for 400 MB), so the disk it took is given back between bursts."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from sqlalchemy import Engine

from hub.runtime.db import BUSY_TIMEOUT_MS, gated
from hub.runtime.periodic import Periodic

log = logging.getLogger(__name__)

# A WAL file past this is truncated when the hub is idle.
IDLE_TRUNCATE_BYTES = 64 * 1024 * 1024
# A reader's open snapshot holds the truncate up: wait this long for it, not SQLite's 30 s,
# since the write gate, which every webhook's commit needs, is held meanwhile.
TRUNCATE_WAIT_MS = 50


def checkpointer(engine: Engine, interval_s: float = 1.0) -> Periodic:
    """Copies SQLite's WAL back into the database file every `interval_s`."""
    tick = wal_keeper(engine)
    return Periodic("checkpoint", interval_s, tick, last=lambda: checkpoint(engine, "TRUNCATE"))


def wal_keeper(engine: Engine) -> Callable[[], None]:
    """One checkpoint pass a call; a truncate once nothing was written since the last call."""
    wal = f"{engine.url.database}-wal"
    last_frames = -1

    def tick() -> None:
        nonlocal last_frames
        busy, frames, copied = checkpoint(engine, "PASSIVE")
        # The same frames as last time, all copied back: no commit since the last pass.
        idle = busy == 0 and frames == copied == last_frames
        last_frames = frames
        if idle and _size(wal) > IDLE_TRUNCATE_BYTES:
            truncate(engine)

    return tick


def checkpoint(engine: Engine, mode: str) -> tuple[int, int, int]:
    """One pass: (busy, frames in the WAL, frames copied back)."""
    with engine.connect() as conn:
        row = conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})").one()
    return int(row[0]), int(row[1]), int(row[2])


def truncate(engine: Engine) -> None:
    # The gate first: a webhook's commit then waits on it, woken as soon as it is free,
    # not in SQLite's busy handler, which sleeps in steps of up to 100 ms.
    with gated(engine), engine.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={TRUNCATE_WAIT_MS}")
        try:
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if busy:
        log.debug("WAL not truncated: a reader still uses it")


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # none yet
        return 0
