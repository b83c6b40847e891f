"""SQLite's WAL copied back into the database file, off the hot path, and kept bounded.

Checkpoints run here, never inside a webhook's commit: with auto-checkpointing, the commit
that crosses 1000 WAL pages does the copy (and its fsync) itself while holding the write
lock, and every webhook waiting on it stalls.

A checkpoint alone does not shrink the WAL. SQLite starts writing it from the beginning again
only when a writer begins while every frame has been copied back, and a pass copies the frames
that were there when it began. Under a steady stream of commits some always arrive during the
pass, so the WAL never started over and grew for as long as the load lasted: 400 MB after
10 s of `make bench`, every new frame written to fresh disk blocks (which the kernel zeroes
first: 16% of the API's CPU in a profile). So once the WAL is past `restart_frames`, the last
pass runs holding the write gate, with no writer to add frames behind it; the next writer
then starts the WAL over. What that pass has to do is made small first: passes without the
gate until the remainder is short, each followed by an fsync of what it copied (SQLite syncs
the database file only after a pass that reached the end, and the first gated pass synced
hundreds of MB: 29-57 ms holding the gate). Measured under the ingest benchmark's load: the
gate held 2-4 ms, once a second at most; the WAL's file peaked at 140-250 MB (the frames of
about two seconds at that rate) where it had reached 577 MB, and no longer grows with the
length of the load. The fresh blocks' cost left the profile; the benchmark's rates stayed
within its noise (the copies moved to this thread)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from hub.runtime.db import write_gate
from hub.runtime.periodic import Periodic

log = logging.getLogger(__name__)

# ~16 MB of 4 KB pages: past this, the WAL is made to start over at the tick. Below it, a
# pass that finds no writer behind it lets the next one start over by itself (light load).
RESTART_FRAMES = 4096
# Passes without the gate stop once a pass finds fewer new frames than this, or after
# CATCH_UP_PASSES: a writer faster than the copy would otherwise keep this thread going.
SHORT_FRAMES = 256
CATCH_UP_PASSES = 8


@dataclass
class WalState:
    """What /metrics shows of the WAL (hub/observability/sqlite_wal.py)."""

    path: str
    restarts: int = 0  # times this process made the WAL start over

    def size(self) -> int:
        try:
            return os.path.getsize(f"{self.path}-wal")
        except OSError:  # none yet, or removed when the last connection closed
            return 0


def checkpointer(
    engine: Engine,
    interval_s: float = 1.0,
    *,
    restart_frames: int = RESTART_FRAMES,
    state: WalState | None = None,
) -> Periodic:
    """Every `interval_s`, copy the WAL back; past `restart_frames`, make it start over."""

    def tick() -> None:
        with engine.connect() as conn:
            frames = _pass(conn)
            if frames >= restart_frames and _start_over(engine, conn, frames) and state:
                state.restarts += 1

    def last() -> None:
        with engine.connect() as conn:
            _pass(conn, "TRUNCATE")

    return Periodic("checkpoint", interval_s, tick, last=last)


def _pass(conn: Connection, mode: str = "PASSIVE") -> int:
    """One checkpoint; the frames the WAL held when it began."""
    _, frames, _ = conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})").one()
    return int(frames)


def _start_over(engine: Engine, conn: Connection, frames: int) -> bool:
    """Whether every frame was copied back with no writer behind: the next one starts over."""
    gate = write_gate(engine)
    if gate is None:
        return False
    for _ in range(CATCH_UP_PASSES):
        now = _pass(conn)
        _sync(engine.url.database)
        if now - frames < SHORT_FRAMES:  # also when a writer has started the WAL over
            break
        frames = now
    with gate:
        held = time.perf_counter()
        busy = _busy(conn)
    log.debug(
        "WAL made to start over at %d frames; write gate held %.1f ms",
        frames,
        (time.perf_counter() - held) * 1000,
    )
    return not busy


def _busy(conn: Connection) -> bool:
    """A pass that could not copy every frame (a reader still needs some)."""
    busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return bool(busy) or copied < frames


def _sync(path: str | None) -> None:
    """fdatasync the database file and its WAL (any descriptor of a file syncs the file)."""
    if not path or path == ":memory:":
        return
    for name in (path, f"{path}-wal"):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
