"""A `hub worker` process that dies is replaced, and what it had fetched from Redis but not
yet claimed goes back to the queue at once (hub/runtime/dead_consumers.py), not once Redis
finds its heartbeat stale. Real PostgreSQL and Redis; required under CI=true."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from tests.conftest import settings_env
from tests.signing import github_request
from tests.test_services import counts, post, wait_for

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parent.parent


def children(pid: int) -> list[int]:
    """The worker processes that `pid` spawned (not multiprocessing's resource tracker)."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(name))
    return found


def test_a_dead_worker_process_gives_back_the_events_it_had_fetched(prod_settings):
    # Redis alone would hand the dead consumer's messages back only after a minute.
    settings = prod_settings.model_copy(update={"broker_heartbeat_timeout_ms": 60_000})
    with TestClient(create_app(settings)) as client:
        for _ in range(30):
            post(client, github_request("ping", {"zen": "z", "hook_id": 1}))
    dsn = settings.database_url.replace("+psycopg", "")
    lock = psycopg.connect(dsn, autocommit=False)
    # The worker fetches the events' message and waits here to claim them: none is claimed
    # (under a lease) when it dies, so only the fetched message can bring them back.
    lock.execute("LOCK TABLE events IN EXCLUSIVE MODE")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "worker", "--processes", "1", "--threads", "2"],
        env=settings_env(settings),
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        # The claim (it counts a run), not the supervisor's sweep, which waits here too.
        with psycopg.connect(dsn, autocommit=True) as watch:

            def claiming() -> bool:
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%UPDATE events SET%runs=%'"
                ).fetchone()
                return bool(waiting and waiting[0])

            wait_for(claiming, 30, "the worker claiming the fetched events")
        (child,) = children(supervisor.pid)
        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
        lock.rollback()
        lock.close()
        wait_for(lambda: counts(settings) == {"processed": 30}, 45, "all 30 processed")
        took = time.monotonic() - killed
        print(f"\nkilled holding 30 fetched events; all processed {took:.1f} s later")
        # The supervisor looks once a second; a new process starts within a couple.
        assert took < 15
        assert child not in children(supervisor.pid)
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(timeout=40)
