"""Workers that share cores with the API yield to it: acknowledging senders comes first."""

from __future__ import annotations

import os
import threading

from dramatiq.worker import ConsumerThread, WorkerThread
from starlette.testclient import TestClient

from hub.bootstrap import create_app
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
