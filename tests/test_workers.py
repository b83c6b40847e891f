"""Workers that share cores with the API yield to it: acknowledging senders comes first."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from dramatiq.worker import ConsumerThread, WorkerThread
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.runtime.priority import AUTOGROUPS
from tests.conftest import make_settings


def _nice(thread: threading.Thread) -> int:
    assert thread.native_id is not None
    return os.getpriority(os.PRIO_PROCESS, thread.native_id)


def test_in_process_workers_run_at_lower_priority_than_the_api(sqlite_url):
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    # Another hub may run in this test process (the console tests' session-wide one): only
    # the threads this app starts are its workers.
    before = set(threading.enumerate())
    with TestClient(create_app(make_settings(sqlite_url, worker_nice=5))):
        workers = [
            t
            for t in set(threading.enumerate()) - before
            if isinstance(t, WorkerThread | ConsumerThread)
        ]
        assert workers
        assert {_nice(t) for t in workers} == {min(base + 5, 19)}
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


@pytest.mark.services
def test_a_hub_worker_lowers_its_session_where_linux_groups_sessions(hub_worker):
    """With autogroups on, a nice value ranks a process only within its session: `hub worker`
    in a session of its own (as a service or a second terminal starts it) took a full share of
    a busy core next to the API and the database. Its session's group takes its nice (10 by
    default); the session that started it keeps its own."""
    enabled = Path(AUTOGROUPS)
    if not enabled.exists() or enabled.read_text().strip() != "1":
        pytest.skip("this kernel does not group sessions for the scheduler (autogroup off)")
    ours = Path("/proc/self/autogroup").read_text()
    proc = hub_worker()
    group = Path(f"/proc/{proc.pid}/autogroup")
    deadline = time.monotonic() + 30
    while not group.read_text().rstrip().endswith(" nice 10") and time.monotonic() < deadline:
        assert proc.poll() is None, "hub worker exited"
        time.sleep(0.1)
    assert group.read_text().rstrip().endswith(" nice 10")
    assert Path("/proc/self/autogroup").read_text() == ours
