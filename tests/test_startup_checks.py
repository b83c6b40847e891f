"""What a person sees when the hub meets a first-run mistake: no database or an old schema,
a badly written HUB_* setting, no admin tokens. Each test asserts the one line. The same
through the `hub` command: tests/test_startup_cli.py."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hub.admin.tokens import ALL_SCOPES, TokenStore
from hub.bootstrap import create_app
from hub.config import Settings, settings_errors, unknown_settings, warn_unknown_settings
from hub.runtime.db import make_engine
from hub.runtime.migrate import upgrade
from hub.runtime.schema import packaged_head, problem
from hub.web.auth import NO_TOKENS
from tests.conftest import make_settings

MIGRATE = "run: hub migrate"


# --- the schema ----------------------------------------------------------------------------


def test_a_database_behind_head_says_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    upgrade(url, "0004")
    expected = (
        f"the database at {tmp_path}/hub.db is at schema revision 0004, behind this hub's "
        f"{packaged_head()} (HUB_DATABASE_URL={url}); {MIGRATE}"
    )
    assert problem(url) == expected


def test_the_password_is_never_shown() -> None:
    line = problem("postgresql+psycopg://hub:s3cret-pw@127.0.0.1:1/hub")
    assert line is not None
    assert line.startswith(
        "cannot reach the database (HUB_DATABASE_URL=postgresql+psycopg://hub:***@127.0.0.1:1/hub)"
    )
    assert "s3cret-pw" not in line


def test_readyz_is_not_ready_until_the_schema_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    upgrade(url, "0004")
    settings = make_settings(url, sweep_interval_s=60.0, routes_refresh_s=0)
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["error"] == "not_ready"
        assert body["reason"] == problem(url)
        assert "behind" in body["reason"] and body["reason"].endswith(MIGRATE)
        assert body["ready"] is False and body["checks"]["database"] == "ok"
        upgrade(url)  # checked again while not ready: no restart needed
        r = client.get("/readyz")
        assert (r.status_code, r.json()) == (
            200,
            {"ready": True, "checks": {"database": "ok", "broker": "ok", "schema": "ok"}},
        )


def test_readyz_is_ready_on_a_migrated_database(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["checks"]["schema"] == "ok"


# --- settings ------------------------------------------------------------------------------


def test_unknown_settings_skips_known_and_test_names() -> None:
    env = {"HUB_ADMIN_TOKENS": "x", "HUB_TEST_POSTGRES_URL": "x", "HUB_URL": "x", "PATH": "x"}
    assert unknown_settings(env, env_file=None) == []
    assert unknown_settings({"HUB_ZZZZZZ": "1"}, env_file=None) == [
        "HUB_ZZZZZZ is not a setting; see hub/config.py for the settings"
    ]


def test_bad_values_of_other_kinds() -> None:
    with pytest.raises(Exception) as caught:
        Settings(_env_file=None, sweep_interval_s="5s", log_format="xml")  # type: ignore[call-arg,arg-type]
    assert settings_errors(caught.value) == [  # type: ignore[arg-type]
        "HUB_SWEEP_INTERVAL_S=5s: not a number of seconds (e.g. 5)",
        "HUB_LOG_FORMAT=xml: must be one of auto, json, text",
    ]


def test_a_secret_is_never_echoed() -> None:
    with pytest.raises(Exception) as caught:
        Settings(_env_file=None, github_token=["ghp_secret_value"])  # type: ignore[call-arg,arg-type]
    (line,) = settings_errors(caught.value)  # type: ignore[arg-type]
    assert line.startswith("HUB_GITHUB_TOKEN=<hidden>: ")
    assert "ghp_secret_value" not in line


# --- admin tokens --------------------------------------------------------------------------


def test_no_admin_tokens_is_said_at_start_and_in_the_401(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(sqlite_url, admin_tokens=[])
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        for headers in ({"authorization": "Bearer guess"}, {}):
            r = client.get("/admin/events", headers=headers)
            assert (r.status_code, r.json()["reason"]) == (401, NO_TOKENS)
    assert NO_TOKENS == (
        "the admin API has no tokens: set HUB_ADMIN_TOKENS (or create one with `hub tokens create`)"
    )
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "HUB_ADMIN_TOKENS is not set: the admin API refuses every request" in warned


def test_a_scoped_token_counts_as_a_token(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(sqlite_url)
    TokenStore(engine).create("ops", ALL_SCOPES, "cli:test")
    engine.dispose()
    settings = make_settings(sqlite_url, admin_tokens=[])
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        r = client.get("/admin/events", headers={"authorization": "Bearer guess"})
        assert r.json()["reason"] == (
            "the bearer token matches no HUB_ADMIN_TOKENS entry and no live token"
        )
    assert not [r for r in caplog.records if "HUB_ADMIN_TOKENS is not set" in r.getMessage()]


def test_an_app_built_from_the_environment_warns_once(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in [k for k in os.environ if k.startswith("HUB_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("HUB_ADMIN_TOKENS", "t")
    monkeypatch.setenv("HUB_SWEEP_INTERVALL_S", "1")
    with caplog.at_level(logging.WARNING):
        warn_unknown_settings()  # as `hub serve` does before uvicorn calls the factory
        with TestClient(create_app()):
            pass
    warned = [r.getMessage() for r in caplog.records if "is not a setting" in r.getMessage()]
    assert warned == ["HUB_SWEEP_INTERVALL_S is not a setting; did you mean HUB_SWEEP_INTERVAL_S?"]


def test_the_check_logs_nothing_of_alembic(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert problem(sqlite_url) is None
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
