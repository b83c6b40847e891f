"""`hub serve` as production runs it, for tests: the installed CLI in a process group of its
own, in a directory of its own; `serve` is a fixture (registered by tests/conftest.py)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from hub.config import Settings
from hub.runtime.http_protocol import IMPORT_PATH
from tests.conftest import settings_env
from tests.test_services import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Serve:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Settings], Serve]]:
    """Start `hub serve` as production does (the installed CLI, its own process group),
    in a directory of its own so that no developer's .env is read. Waits for /readyz."""
    started: list[Serve] = []

    def start(settings: Settings, *, plain_uvicorn: bool = False) -> Serve:
        """`plain_uvicorn`: `uvicorn --factory hub.bootstrap:create_app` instead, as the
        README allows."""
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        command = ["-m", "hub.cli", "serve", "--port", str(port)]
        if plain_uvicorn:
            command = ["-m", "uvicorn", "--factory", "hub.bootstrap:create_app"]
            command += ["--port", str(port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *command],
                env=settings_env(settings),
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        hub = Serve(proc, port, log)
        started.append(hub)
        wait_for(lambda: ready(hub), 30, "hub serve to be ready")
        return hub

    yield start
    for hub in started:
        if hub.proc.poll() is None:
            os.killpg(hub.proc.pid, signal.SIGKILL)
            hub.proc.wait(timeout=10)


@contextmanager
def uvicorn_thread(app: Any, *, http: Any = IMPORT_PATH) -> Iterator[int]:
    """An ASGI app served by uvicorn on a thread of this process, on a free port (yielded),
    with `hub serve`'s HTTP protocol unless told otherwise; stopped on leaving."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, http=http, loop="uvloop", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn failed to start (see the log)"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def ready(hub: Serve) -> bool:
    if hub.proc.poll() is not None:
        raise AssertionError(f"hub serve exited with {hub.proc.returncode}:\n{hub.output()}")
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=2)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def group_alive(pgid: int) -> bool:
    """Any live (not zombie) process in the group: /proc, since a zombie answers kill(0)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
            return True
    return False
