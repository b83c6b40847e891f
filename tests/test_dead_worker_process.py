"""A `hub worker` process that dies is replaced, and what it held moves again at once: the
messages it had fetched from Redis (hub/runtime/dead_consumers.py) and the events it had
claimed (EventStore.release_claims), instead of waiting for Redis to find its heartbeat
stale and for the events' leases to run out. Real PostgreSQL and Redis; required under
CI=true."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from tests.signing import github_request
from tests.test_services import counts, post, wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def settings(prod_settings: Settings) -> Settings:
    """Redis alone would return a dead consumer's messages after a minute, and a claimed
    event's lease would run as long: only the supervisor can make either come back sooner.
    30 events stored, not yet run."""
    slow = {"broker_heartbeat_timeout_ms": 60_000, "processing_lease_s": 60.0}
    settings = prod_settings.model_copy(update=slow)
    with TestClient(create_app(settings)) as client:
        for _ in range(30):
            post(client, github_request("ping", {"zen": "z", "hook_id": 1}))
    return settings


@pytest.fixture
def supervisor(
    settings: Settings, hub_worker: Callable[..., subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    return hub_worker(settings)


def worker_processes(pid: int) -> list[int]:
    """The worker processes that `pid` spawned (not multiprocessing's resource tracker)."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(name))
    return found


def waiting_on_lock(settings: Settings, statement: str) -> bool:
    dsn = settings.database_url.replace("+psycopg", "")
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE %s",
            (statement,),
        ).fetchone()
    return bool(row and row[0])


def kill_worker_then_unlock(
    settings: Settings, supervisor: subprocess.Popen[bytes], table: str, statement: str
) -> float:
    """Lock `table`, let the worker process get stuck on `statement`, SIGKILL it (the
    supervisor lives on), unlock; seconds from the kill until all 30 events are processed."""
    lock = psycopg.connect(settings.database_url.replace("+psycopg", ""), autocommit=False)
    lock.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
    try:
        stuck = lambda: waiting_on_lock(settings, statement)  # noqa: E731
        wait_for(stuck, 30, f"the worker process waiting on {table}")
        (child,) = worker_processes(supervisor.pid)
        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
    finally:
        lock.rollback()
        lock.close()
    wait_for(lambda: counts(settings) == {"processed": 30}, 75, "all 30 processed")
    assert child not in worker_processes(supervisor.pid)
    return time.monotonic() - killed


def test_what_a_dead_worker_process_had_fetched_runs_at_once(settings, supervisor):
    # The claim (it counts a run), not the supervisor's sweep, which waits on events too:
    # nothing is claimed when the process dies, so only its fetched message holds the events.
    took = kill_worker_then_unlock(settings, supervisor, "events", "%UPDATE events SET%runs=%")
    print(f"\nkilled holding 30 fetched events; all processed {took:.1f} s later")
    # The supervisor looks once a second; a new process starts within a couple.
    assert took < 15


def test_what_a_dead_worker_process_had_claimed_runs_at_once(settings, supervisor):
    # Claimed and run, the outcome not yet recorded (its attempts wait on the lock).
    took = kill_worker_then_unlock(settings, supervisor, "attempts", "%INSERT INTO attempts%")
    print(f"\nkilled holding 30 claimed events; all processed {took:.1f} s later")
    assert took < 15
