"""SQLite's WAL copied back into the database file, off the hot path.

Checkpoints run here, never inside a webhook's commit: with auto-checkpointing, the commit
that crosses 1000 WAL pages does the copy (and its fsync) itself while holding the write
lock, and every webhook waiting on it stalls.

Known and not solved: a checkpoint copies the frames there were when it began, and SQLite
writes the WAL from its beginning again only when a writer begins while every frame has been
copied back. Under a steady stream of commits some always arrive during the pass, so under a
sustained load the WAL file grows for as long as the load lasts (577 MB in one `make bench`
ingest run); after a pause it is written from its beginning again, at the size it reached
(`hub_sqlite_wal_bytes` on /metrics), until the hub stops and truncates it. A version that
made it start over (a last pass holding the write gate) stalled the embedded drain and was
taken back: docs/benchmarks.md, 2026-12-04, late night."""

from __future__ import annotations

from sqlalchemy import Engine

from hub.runtime.periodic import Periodic


def checkpointer(engine: Engine, interval_s: float = 1.0) -> Periodic:
    """Copies SQLite's WAL back into the database file every `interval_s`."""

    def checkpoint(mode: str = "PASSIVE") -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")

    return Periodic("checkpoint", interval_s, checkpoint, last=lambda: checkpoint("TRUNCATE"))
