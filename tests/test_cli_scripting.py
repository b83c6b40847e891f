"""The `hub` CLI for scripts and people: a fast start, --version, --json in the admin API's
shapes, `hub audit` and `hub stats`, help on every option, a replay of everything asked
for, short ids, and `hub migrate` in one line. Each test checks what a person or a script
sees: the exit code, the one line, JSON that parses with the expected keys."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any, get_args

import pytest
from sqlalchemy import update

from hub.cli import admin as admin_cli
from hub.cli.main import DEMO_URL, parser
from hub.events.models import Status
from hub.events.store import event_bodies, events
from hub.runtime.db import make_engine
from hub.runtime.migrate import upgrade
from hub.web.admin_schemas import IncidentState, Severity
from tests import test_cli_admin
from tests.handlers import payloads as p
from tests.test_admin_api import post_stripe, stripe_event, wait_settled
from tests.test_cli_admin import ME, ROOT, run

HEAVY = ("sqlalchemy", "sqlmodel", "fastapi", "dramatiq", "stripe", "slack_sdk", "github",
         "alembic", "pydantic_settings", "uvicorn", "httpx")  # fmt: skip
ROOT_DIR = Path(__file__).resolve().parents[1]
# The fixtures of the admin commands' tests: a migrated database in HUB_DATABASE_URL, a hub on it.
settings = test_cli_admin.settings
hub = test_cli_admin.hub


def _hub(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hub.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT_DIR,
        env=env,
        timeout=60,
        check=False,
    )


def _imported(importtime: str) -> set[str]:
    """Top-level packages named by `-X importtime` lines (`import time: self | cum | name`)."""
    names = set()
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["replay", "--help"], ["events", "list", "--help"]]
)
def test_help_and_version_load_none_of_the_heavy_libraries(argv):
    done = _hub(*argv)
    assert done.returncode == 0, done.stderr
    loaded = _imported(done.stderr)
    assert "hub" in loaded  # the check reads importtime's lines at all
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    if argv == ["--version"]:
        assert done.stdout == f"hub {version('webhook-hub')}\n"
    else:
        assert done.stdout.startswith("usage: hub")


def _walk(p: argparse.ArgumentParser, path: str) -> list[str]:
    """`command --option` for every option, positional and subcommand without help."""
    missing = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {c.dest for c in action._choices_actions if c.help}
            missing += [f"{path} {name}" for name in action.choices if name not in helped]
            for name, child in action.choices.items():
                missing += _walk(child, f"{path} {name}")
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_command_and_option_says_what_it_does():
    assert _walk(parser(), "hub") == []


def test_the_choices_written_into_the_parser_are_the_models():
    # Written out so that `hub --help` imports no model; these keep them honest.
    assert tuple(s.value for s in Status) == admin_cli.EVENT_STATUSES
    assert get_args(IncidentState) == admin_cli.INCIDENT_STATES
    assert get_args(Severity) == admin_cli.SEVERITIES
    from hub.cli import demo

    assert demo.DEFAULT_URL == DEMO_URL


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)  # the whole of stdout is one document


def test_json_on_every_read_command_is_the_admin_apis_json(settings, hub, capsys):
    event_id = stripe_event(hub, "payout.updated")
    wait_settled(hub, event_id)
    dispute = p.stripe_event("charge.dispute.created", p.dispute())
    wait_settled(hub, post_stripe(hub, json.dumps(dispute).encode()))
    run(capsys, "tokens", "create", "--name", "grafana", "--scopes", "read")

    listed = _json(capsys, "events", "list")
    api = hub.get("/admin/events", headers=ROOT).json()["items"]
    assert listed == api and event_id in [e["id"] for e in listed]
    assert (
        _json(capsys, "events", "show", event_id)
        == hub.get(f"/admin/events/{event_id}", headers=ROOT).json()
    )
    incidents = _json(capsys, "incidents", "list")
    assert incidents == hub.get("/admin/incidents", headers=ROOT).json()["items"]
    incident_id = incidents[0]["id"]
    shown = _json(capsys, "incidents", "show", incident_id)
    assert shown == hub.get(f"/admin/incidents/{incident_id}", headers=ROOT).json()
    assert {"timeline", "events", "severity", "status"} <= shown.keys()
    assert _json(capsys, "tokens", "list") == hub.get("/admin/tokens", headers=ROOT).json()["items"]
    assert _json(capsys, "audit") == hub.get("/admin/audit", headers=ROOT).json()["items"]
    assert _json(capsys, "stats") == hub.get("/admin/stats", headers=ROOT).json()
    dry = _json(capsys, "replay", "--status", "ignored", "--dry-run")
    assert dry["matched"] >= 1 and dry["replayed"] == 0 and "replay_id" in dry

    code, out, err = run(capsys, "events", "show", "evt_nope", "--json")
    assert (code, out) == (1, "") and "no event with id evt_nope" in err


def test_audit_and_stats_from_the_terminal(settings, hub, capsys):
    wait_settled(hub, stripe_event(hub, "payout.updated"))
    run(capsys, "tokens", "create", "--name", "one", "--scopes", "read")
    run(capsys, "tokens", "create", "--name", "two", "--scopes", "read")
    run(capsys, "tokens", "revoke", "one")

    code, out, _ = run(capsys, "audit")
    header, *rows = out.splitlines()
    assert code == 0 and header.split()[:4] == ["ID", "AT", "(UTC)", "ACTOR"]
    assert [r.split()[4] for r in rows] == ["token.revoke", "token.create", "token.create"]
    only = _json(capsys, "audit", "--action", "token.create", "--limit", "1")
    assert [(a["actor"], a["action"], a["target"]) for a in only] == [(ME, "token.create", "two")]
    assert _json(capsys, "audit", "--actor", "someone-else") == []
    assert _json(capsys, "audit", "--since", "2999-01-01") == []
    assert len(_json(capsys, "audit", "--until", "2999-01-01")) == 3

    code, out, _ = run(capsys, "stats")
    assert code == 0
    assert "ignored     1" in out.splitlines()
    assert any(line.split() == ["stripe", "1"] for line in out.splitlines())


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_replaying_every_event_is_asked_for(settings, hub, capsys, monkeypatch):
    for _ in range(3):
        wait_settled(hub, stripe_event(hub, "payout.updated"))

    # A script (no terminal): refused, with what to do instead.
    code, out, err = run(capsys, "replay")
    assert (code, out) == (2, "")
    assert err.strip() == (
        "hub replay: no event ids and no filter would replay all 3 events; "
        "add a filter (e.g. --status failed) or --all/--yes"
    )
    # A person: asked, and "no" (or just Enter) replays nothing.
    monkeypatch.setattr(sys, "stdin", _Terminal("\n"))
    code, out, err = run(capsys, "replay")
    assert (code, out) == (1, "")
    assert err.startswith("Replay all 3 events? [y/N] ") and "nothing replayed" in err
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    code, out, _ = run(capsys, "replay", "--no-wait")
    assert code == 0 and out.startswith("3 matched, 3 replayed")

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert run(capsys, "replay", "--dry-run")[1].strip() == (
        "3 events match; nothing replayed (dry run)"
    )
    for flag in ("--all", "--yes"):
        code, out, _ = run(capsys, "replay", flag, "--no-wait")
        assert code == 0 and out.startswith("3 matched"), flag


def test_ids_may_be_given_by_a_unique_prefix(settings, hub, capsys):
    first, second = (stripe_event(hub, "payout.updated") for _ in range(2))
    for event_id in (first, second):
        wait_settled(hub, event_id)
    a, b = "evt_01KBTEST0A" + "0" * 16, "evt_01KBTEST0B" + "0" * 16
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # the body follows its event
        for old, new in ((first, a), (second, b)):
            conn.execute(update(events).where(events.c.id == old).values(id=new))
            conn.execute(
                update(event_bodies).where(event_bodies.c.event_id == old).values(event_id=new)
            )
    engine.dispose()

    assert _json(capsys, "events", "show", "evt_01kbtest0a")["id"] == a  # any case
    assert _json(capsys, "events", "show", "01KBTEST0B")["id"] == b  # evt_ may be left out
    code, out, err = run(capsys, "events", "show", "evt_01KBTEST")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "evt_01KBTEST matches 2 ids; give more of one:",
        f"  {a}",
        f"  {b}",
    ]
    code, _, err = run(capsys, "events", "show", "evt_01KBZZZZ")
    assert code == 1 and err.strip() == "no event with id evt_01KBZZZZ"
    code, _, err = run(capsys, "events", "show", "evt_01KB")  # too short to look for
    assert code == 1 and err.strip() == "no event with id evt_01KB"
    code, out, _ = run(capsys, "replay", "evt_01KBTEST0A")
    assert code == 0 and out.strip() == f"{a}: queued (queued)"

    dispute = p.stripe_event("charge.dispute.created", p.dispute())
    wait_settled(hub, post_stripe(hub, json.dumps(dispute).encode()))
    incident_id = hub.get("/admin/incidents", headers=ROOT).json()["items"][0]["id"]
    code, out, _ = run(capsys, "incidents", "ack", incident_id[:16])
    assert code == 0 and out.strip() == f"{incident_id}: Acknowledged by {ME}"
    assert _json(capsys, "incidents", "show", incident_id[:16])["status"] == "acknowledged"


def test_migrate_says_where_and_from_which_revision_in_one_line(tmp_path):
    from alembic.script import ScriptDirectory

    from hub.runtime.migrate import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    url = f"sqlite:///{tmp_path}/hub.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATABASE_URL"] = url

    def migrate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub.cli", "migrate"],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
        )  # fmt: skip

    upgrade(url, "0003")
    done = migrate()
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"database at {url} migrated to {head} (from 0003)\n"
    done = migrate()
    assert (done.returncode, done.stdout, done.stderr) == (
        0, f"database at {url} already at {head}\n", ""
    )  # fmt: skip
