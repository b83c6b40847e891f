"""`hub serve` and `hub worker` started before their PostgreSQL is up (a host booting, compose
without health checks, a failover) wait for it, saying so, and start once it answers; the
one-shot commands still refuse at once. Run as a person runs them: subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings, settings_env
from tests.faults_support import free_port, kill, wait_for
from tests.proxy import Proxy, in_front_of

pytestmark = pytest.mark.services


@pytest.fixture
def database_down(postgres_url: str) -> Iterator[tuple[Proxy, str]]:
    """A migrated database behind a link that is down, and the URL that reaches it there."""
    proxy, url = in_front_of(postgres_url)
    yield proxy, url
    proxy.down()


def start(tmp_path: Path, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    log = (tmp_path / f"{name}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", *args],
        cwd=tmp_path,
        env={**env, "HUB_LOG_FORMAT": "text"},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_serve_and_worker_wait_for_a_database_that_is_not_up_yet(
    tmp_path: Path, database_down: tuple[Proxy, str], redis_url: str
) -> None:
    proxy, url = database_down
    port = free_port()
    env = settings_env(make_settings(url, redis_url=redis_url, queue_name=f"hub-wait-{port}"))
    serve = start(tmp_path, "serve", ["serve", "--port", str(port)], env)
    worker = start(tmp_path, "worker", ["worker", "--processes", "1", "--threads", "1"], env)
    logs = {"serve": tmp_path / "serve.log", "worker": tmp_path / "worker.log"}
    try:
        for name, log in logs.items():
            wait_for(lambda log=log: "trying again in 2 s" in log.read_text(), 30, f"{name} retry")
        for proc in (serve, worker):
            assert proc.poll() is None, "exited instead of waiting for the database"
        first = logs["worker"].read_text().splitlines()[0]
        assert first.startswith(f"hub: cannot reach the database (HUB_DATABASE_URL={url}): ")
        assert first.endswith("; trying again in 1 s")
        # The wait is not a hang: a database that comes up is found within the longest wait.
        proxy.up()
        began = time.monotonic()

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 30, "hub serve ready")
        wait_for(lambda: "worker processes" in logs["worker"].read_text(), 30, "worker started")
        assert time.monotonic() - began < 20
    finally:
        for proc in (serve, worker):
            kill(proc)  # type: ignore[arg-type]


def test_a_one_shot_command_still_refuses_at_once(
    tmp_path: Path, database_down: tuple[Proxy, str]
) -> None:
    _, url = database_down
    env = settings_env(make_settings(url))
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "events", "list"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"hub: cannot reach the database (HUB_DATABASE_URL={url}): ")
    assert "trying again" not in done.stderr
