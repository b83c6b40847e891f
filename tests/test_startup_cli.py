"""`hub` refuses, in one line and exit code 2, to run on a missing or old database or with a
badly written HUB_* variable, and warns about misspelled ones. Run as a person runs it: a
subprocess in a directory of its own, with only the HUB_* variables given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub.runtime.migrate import upgrade
from hub.runtime.schema import problem

MIGRATE = "run: hub migrate"


def hub(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`hub ARGS` in `cwd` with only these HUB_* variables (text logs, to read them)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        check=False,
        cwd=cwd,
        env={**clean, "HUB_LOG_FORMAT": "text", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_a_command_in_an_empty_directory_names_the_file_and_creates_none(tmp_path: Path) -> None:
    done = hub(tmp_path, "events", "list")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"hub: no database at {tmp_path}/hub.db (HUB_DATABASE_URL=sqlite:///./hub.db, "
        f"relative to {tmp_path}); {MIGRATE}"
    )
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_serve_refuses_a_database_without_schema(tmp_path: Path) -> None:
    (tmp_path / "hub.db").touch()
    done = hub(tmp_path, "serve", "--port", "1")
    assert done.returncode == 2
    assert last_line(done.stderr) == (
        f"hub: the database at {tmp_path}/hub.db has no schema "
        f"(HUB_DATABASE_URL=sqlite:///./hub.db, relative to {tmp_path}); {MIGRATE}"
    )
    assert "Traceback" not in done.stderr


def test_worker_refuses_too_and_migrate_is_exempt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    worker = hub(tmp_path, "worker", HUB_DATABASE_URL=url, HUB_REDIS_URL="redis://127.0.0.1:1")
    assert worker.returncode == 2
    assert last_line(worker.stderr) == (
        f"hub: no database at {tmp_path}/hub.db (HUB_DATABASE_URL={url}); {MIGRATE}"
    )
    assert hub(tmp_path, "migrate", HUB_DATABASE_URL=url).returncode == 0
    assert hub(tmp_path, "incidents", "list", HUB_DATABASE_URL=url).returncode == 0


def test_a_command_on_a_database_behind_head_refuses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    upgrade(url, "0004")
    done = hub(tmp_path, "incidents", "list", HUB_DATABASE_URL=url)
    assert (done.returncode, last_line(done.stderr)) == (2, f"hub: {problem(url)}")
    assert "behind" in done.stderr


def test_a_misspelled_variable_is_warned_about_with_the_closest_name(tmp_path: Path) -> None:
    upgrade(f"sqlite:///{tmp_path}/hub.db")
    (tmp_path / ".env").write_text("HUB_ADMIN_TOKEN=dev-admin-token\n")
    done = hub(
        tmp_path,
        "incidents",
        "list",
        HUB_GITHUB_WEBHOOK_SECRET="not-shown",
        HUB_TEST_REDIS_URL="redis://127.0.0.1:6379/0",  # the suite's own: not warned about
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "is not a setting" in line]
    assert len(lines) == 2, done.stderr
    assert lines[0].endswith(
        "HUB_ADMIN_TOKEN (in .env) is not a setting; did you mean HUB_ADMIN_TOKENS?"
    )
    assert lines[1].endswith(
        "HUB_GITHUB_WEBHOOK_SECRET is not a setting; did you mean HUB_GITHUB_WEBHOOK_SECRETS?"
    )
    assert "not-shown" not in done.stderr and "dev-admin-token" not in done.stderr


def test_a_bad_value_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    done = hub(tmp_path, "events", "list", HUB_MAX_BODY_BYTES="25MiB", HUB_ADMIN_TOKENS="tok-x")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "hub: HUB_MAX_BODY_BYTES=25MiB: not a whole number of bytes (e.g. 26214400)"
    )
    assert list(tmp_path.iterdir()) == []  # refused before anything was opened
