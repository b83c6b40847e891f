"""Engine construction: SQLite in WAL mode for the embedded default, PostgreSQL in production."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, text

from hub.runtime.priority import ProcessPriority

log = logging.getLogger(__name__)
_gates: WeakKeyDictionary[Engine, WriteGate] = WeakKeyDictionary()


class WriteGate:
    """SQLite's one writer, taken in turn: by this process's threads on a lock, and by the
    processes sharing the file (the API and its embedded worker process) on flock(2) over
    `<database>-lock`, which the kernel lets go of if a holder dies. Blocking on either
    releases the GIL. The lock files are opened at the first write: reading creates nothing.

    The API goes first. flock does not queue its waiters: a worker that writes transaction
    after transaction takes the lock again before a woken API thread has run, and webhooks
    waited 170-900 ms (measured, `make bench` at 20% routed). So an API writer holds
    `<database>-wait` shared while it waits, and a worker does not take the lock while
    anyone holds that: it waits for at most the one transaction it had already begun. And
    that transaction runs at the API's CPU priority, not the worker's (hub/runtime/priority.py)."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._path = path if path and path != ":memory:" else None
        self._fd: int | None = None
        self._wait_fd: int | None = None
        self.first = False  # an API process: see prioritise_writes
        self.priority: ProcessPriority | None = None  # a worker process: see raise_while_writing

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            if self._path is not None:
                self._take()
        except BaseException:
            self._lock.release()
            raise

    def _take(self) -> None:
        if self._fd is None:
            self._fd = _lock_file(f"{self._path}-lock")
            self._wait_fd = _lock_file(f"{self._path}-wait")
        assert self._wait_fd is not None
        if self.first:
            fcntl.flock(self._wait_fd, fcntl.LOCK_SH)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            finally:
                fcntl.flock(self._wait_fd, fcntl.LOCK_UN)
            return
        while True:  # no API writer waiting: then take the lock
            try:
                fcntl.flock(self._wait_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(API_FIRST_POLL_S)
                continue
            fcntl.flock(self._wait_fd, fcntl.LOCK_UN)
            break
        if self.priority is not None:
            # Before the lock is granted: the kernel grants it to a sleeping waiter, and
            # from then on the waiter is in the API's way.
            self.priority.raise_()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            if self.priority is not None:
                self.priority.lower()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                if self.priority is not None:
                    self.priority.lower()
        finally:
            self._lock.release()


# How often a worker looks again while an API writer waits: a webhook's commit is short.
API_FIRST_POLL_S = 0.0005


def _lock_file(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def prioritise_writes(engine: Engine) -> None:
    """This process answers webhooks: its SQLite writers go before a worker process's."""
    gate = _gates.get(engine)
    if gate is not None:
        gate.first = True


def raise_while_writing(engine: Engine, priority: ProcessPriority) -> None:
    """This worker process runs below the API: at the API's priority while it holds SQLite's
    write lock (hub/runtime/priority.py)."""
    gate = _gates.get(engine)
    if gate is not None:
        gate.priority = priority


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


# How long SQLite waits for a lock held by another connection (behind the write gate, rarely).
BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL", pool_size: int = 10) -> Engine:
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _tune_sqlite(engine, sqlite_synchronous)
        _gates[engine] = WriteGate(engine.url.database)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per transaction on the hot path; a connection
        # broken by a database restart is invalidated on its first error (answered 503).
        pool_recycle=300,
        # Every transaction ends in COMMIT or ROLLBACK already (engine.begin()); the pool's
        # extra ROLLBACK on check-in would be one more round trip per batch.
        pool_reset_on_return=None,
        # A dead database must fail fast (503) rather than hang the request.
        connect_args={"connect_timeout": 3},
        # psycopg's JSON dumper with orjson instead of the json module: an incident's opening
        # writes several JSON values (its links, version, the effects' payloads), and
        # json.dumps was 6.5% of a worker's time opening incidents (py-spy). Reading stays
        # with json.loads, which keeps integers past 64 bits exact (orjson makes them floats).
        json_serializer=json_dumps,
    )


def json_dumps(value: Any) -> bytes | str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson refuses and json takes (an integer past 64 bits)
        return json.dumps(value)


def _tune_sqlite(engine: Engine, synchronous: str) -> None:
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"unknown SQLite synchronous mode {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets readers (admin API, workers) run beside the writer; busy_timeout makes
        # concurrent writers queue instead of failing with "database is locked".
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Checkpoints run on the checkpointer thread, never inside a webhook's commit.
        cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """Reads that need no snapshot shared between them, on PostgreSQL each statement on its
    own (autocommit): no BEGIN and no ROLLBACK round trips. And no ROLLBACK above all on
    PostgreSQL: psycopg forgets every prepared statement at one (it cannot tell what a failed
    transaction lost), and the workers' one read per batch ended in one, so nothing they ran
    was ever prepared: every statement parsed and planned anew (measured, 12-event batches:
    parse and bind 0.3-0.5 ms of the claim's 1.1). SQLite as before: its dialect turns
    autocommit off again with a PRAGMA at every return, one more statement per read in the
    worker process that shares the API's core, for nothing to keep."""
    if _gates.get(engine) is not None:
        with engine.connect() as conn:
            yield conn
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn


@contextmanager
def gated(engine: Engine) -> Iterator[None]:
    """SQLite's write gate (nothing elsewhere): `write` takes it, and so does a writer that
    keeps a connection of its own (the ingress's, hub/ingest/sqlite_writer.py)."""
    gate = _gates.get(engine)
    if gate is None:
        yield
        return
    with gate:
        yield


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction. SQLite has one writer: its threads queue on a Python lock here,
    because SQLite's own busy handler sleeps in steps of up to 100 ms and would put those
    sleeps straight into the webhook answer times."""
    with gated(engine), engine.begin() as conn:
        yield conn
