"""Shared fixtures: a hub built from settings like production, and the real services.

Tests that need PostgreSQL or Redis skip with a reason on a machine without them, and fail
under CI=true, where skipping would hide a broken service path."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import Engine

from hub.config import Settings
from hub.runtime.db import make_engine
from hub.runtime.migrate import upgrade
from tests.fakes.slack import SlackServer
from tests.signing import GITHUB_SECRET, SLACK_SECRET, STRIPE_SECRET

PG_CANDIDATES = [
    os.environ.get("HUB_TEST_POSTGRES_URL", ""),
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
]
REDIS_URL = os.environ.get("HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_TOKEN = "admin-token-for-tests"
ROOT = Path(__file__).resolve().parent.parent


def _unavailable(service: str, why: str) -> None:
    message = f"{service} is not reachable ({why})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "redis_url": None,  # an exported HUB_REDIS_URL must not send tests to Redis
        "stripe_webhook_secrets": [STRIPE_SECRET],
        "github_webhook_secrets": [GITHUB_SECRET],
        "slack_signing_secrets": [SLACK_SECRET],
        "admin_tokens": [ADMIN_TOKEN],
        "worker_min_backoff_ms": 50,
        "worker_max_backoff_ms": 200,
        "worker_max_retries": 2,
        "sweep_interval_s": 0.5,
        "requeue_received_after_s": 1.0,
        "processing_lease_s": 3.0,
        "queue_name": f"hub-test-{uuid.uuid4().hex[:8]}",
        # In-process tests (TestClient) run the embedded workers as threads: a worker process
        # per app would add a second of start-up to hundreds of tests. The default, a child
        # process, is what `hub serve` runs in tests/test_embedded_workers.py and test_shutdown.
        "embedded_workers": "thread",
    }
    values.update(overrides)
    # _env_file=None: a developer's .env must not leak into tests.
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database migrated to head per test process; each test gets a copy. Migrating
    costs about 0.2 s and most tests need a database, so this is a minute of the suite.
    The migrations themselves are still run from empty by the tests that call `upgrade`."""
    path = tmp_path_factory.mktemp("template") / "hub.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "hub.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    errors = []
    for url in filter(None, PG_CANDIDATES):
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error as exc:
            errors.append(f"{url.split('@')[-1]}: {type(exc).__name__}")
    _unavailable("PostgreSQL", "; ".join(errors))
    raise AssertionError("unreachable")


def _database_url(admin_url: str, name: str) -> str:
    base = admin_url.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> Iterator[str]:
    """A database migrated to head once per test process, copied by CREATE DATABASE ...
    TEMPLATE for each test (as sqlite_template). Nothing else connects to it, as a template
    must not have connections while it is copied."""
    name = f"hub_template_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(_database_url(postgres_admin_url, name))
    yield name
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_admin_url: str, postgres_template: str) -> Iterator[str]:
    """A fresh database per test, migrated, dropped afterwards."""
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    url = _database_url(postgres_admin_url, name)
    yield url
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on a migrated database of each kind: the test runs once on each. A module
    that needs another engine defines its own `engine`."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    made = make_engine(url)
    yield made
    made.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", f"{REDIS_URL}: {type(exc).__name__}")
    yield REDIS_URL
    client.close()


@pytest.fixture
def redis_namespace(redis_url: str) -> Iterator[str]:
    """A private Dramatiq namespace, deleted afterwards, so tests never see each other's jobs."""
    namespace = f"hubtest-{uuid.uuid4().hex[:10]}"
    yield namespace
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"HUB_{name.upper()}"] = _plain(value)
    return env


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_plain(v) for v in value)
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """A local server that answers like Slack's Web API (see tests/fakes/slack.py)."""
    with SlackServer() as server:
        yield server


@pytest.fixture
def prod_settings(postgres_url: str, redis_url: str, redis_namespace: str) -> Settings:
    """Production mode: PostgreSQL and Redis, a short heartbeat so dead workers show fast."""
    return make_settings(
        postgres_url,
        redis_url=redis_url,
        redis_namespace=redis_namespace,
        broker_heartbeat_timeout_ms=5_000,
    )


def with_slack(settings: Settings, slack: SlackServer, **more: object) -> Settings:
    """`settings` talking to the fake Slack server, with a short effect lease (3 s) so a
    crashed delivery is retried within a test's patience."""
    update = {"slack_bot_token": slack.token, "slack_api_url": slack.api_url}
    return settings.model_copy(update=update | {"effect_lease_s": 3.0} | more)


@pytest.fixture
def hub_worker(prod_settings: Settings) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `hub worker` processes (each in its own process group; with `prod_settings`
    unless given others) and clean them up."""
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings = prod_settings) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "worker", "--processes", "1", "--threads", "2"],
            env=settings_env(settings),
            cwd=ROOT,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault-injection tests take 15-60 s each, against under 3 s for nearly all others:
    started first, they run beside the short ones on the other core (`make test` runs with
    pytest-xdist) instead of being what the last worker is still doing when the rest is done."""
    items.sort(key=lambda item: item.get_closest_marker("faults") is None)


from tests.serving import serve  # noqa: E402, F401  (the fixture, for every test module)
