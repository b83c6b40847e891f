"""The admin commands from a terminal, against the same database as a running hub."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.cli.main import main
from hub.config import Settings
from hub.events.models import Status
from hub.events.store import events
from hub.runtime.db import make_engine
from tests.handlers import payloads as p
from tests.test_admin_api import TOKENS, make_settings, post_stripe, stripe_event, wait_settled
from tests.test_incident_flow import wait_for

ROOT = {"Authorization": f"Bearer {TOKENS[0]}"}
ME = f"cli:{getpass.getuser()}"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = make_settings(tmp_path)
    # The CLI reads its settings as `hub` does: from the environment (and a .env, kept away).
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_DATABASE_URL", settings.database_url)
    return settings


@pytest.fixture
def hub(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_token_made_on_the_command_line_works_with_its_scopes(settings, hub, capsys):
    code, out, _ = run(capsys, "tokens", "create", "--name", "grafana", "--scopes", "read")
    assert code == 0
    token = out.splitlines()[-1]
    assert token.startswith("hub_")
    assert hub.get("/admin/stats", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    denied = hub.post("/admin/replays", json={"dry_run": True},
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert denied.status_code == 403

    code, out, _ = run(capsys, "tokens", "list")
    assert "grafana" in out and "read" in out and token not in out
    assert run(capsys, "tokens", "revoke", "grafana")[0] == 0
    assert hub.get("/admin/stats", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    code, _, err = run(capsys, "tokens", "create", "--name", "x", "--scopes", "root")
    assert code == 2 and "unknown scope(s) root" in err
    audit = hub.get("/admin/audit", headers=ROOT).json()["items"]
    assert [(a["actor"], a["action"]) for a in audit] == [
        (ME, "token.revoke"),
        (ME, "token.create"),
    ]


def test_events_are_listed_and_shown_byte_for_byte(settings, hub, capsys):
    event_id = stripe_event(hub, "payout.updated")
    wait_settled(hub, event_id)
    code, out, _ = run(capsys, "events", "list", "--provider", "stripe")
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:3] == ["ID", "RECEIVED", "(UTC)"]
    assert row.split()[0] == event_id and "payout.updated" in row and "ignored" in row
    stored = hub.get(f"/admin/events/{event_id}", headers=ROOT).json()["body"]
    code, out, _ = run(capsys, "events", "show", event_id, "--raw")
    assert out == stored
    code, out, _ = run(capsys, "events", "show", event_id)
    assert "status  ignored" in out and "attempts:" in out
    assert run(capsys, "events", "show", "evt_nope")[0] == 1


def test_replay_from_the_terminal_follows_progress_to_the_end(settings, hub, capsys):
    ids = [stripe_event(hub, "payout.updated") for _ in range(30)]
    for event_id in ids:
        wait_settled(hub, event_id)
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:  # as if each had failed after its retries
        conn.execute(update(events).where(events.c.id.in_(ids[:20]))
                     .values(status=Status.FAILED, last_error="boom"))  # fmt: skip
    engine.dispose()

    code, out, _ = run(capsys, "replay", "--status", "failed", "--dry-run")
    assert out.strip() == "20 events match; nothing replayed (dry run)"
    # An embedded hub's queue lives in its own process: its sweeper takes the replayed events.
    code, out, err = run(capsys, "replay", "--status", "failed", "--timeout", "30")
    assert code == 0, err
    assert out.startswith("20 matched, 20 replayed, 0 skipped")
    assert "20/20 100%" in err
    statuses = {hub.get(f"/admin/events/{i}", headers=ROOT).json()["status"] for i in ids}
    assert statuses == {"ignored"}
    code, out, _ = run(capsys, "replay", ids[0])
    assert out.strip() == f"{ids[0]}: queued (queued)"
    wait_for(lambda: hub.get(f"/admin/events/{ids[0]}", headers=ROOT).json()["status"] == "ignored")
    audit: list[dict[str, Any]] = hub.get("/admin/audit", headers=ROOT).json()["items"]
    assert [(a["actor"], a["action"]) for a in audit][:3] == [
        (ME, "event.replay"),
        (ME, "replay.start"),
        (ME, "replay.dry_run"),
    ]
    assert audit[1]["detail"]["filter"] == {"status": "failed"}


def test_retention_from_the_terminal(settings, hub, capsys):
    code, out, _ = run(capsys, "retention", "run", "--dry-run")
    assert code == 0
    assert out.startswith("would empty the bodies of 0 processed/ignored events older than 30")


def test_incidents_from_the_terminal(settings, hub, capsys):
    dispute = p.stripe_event("charge.dispute.created", p.dispute())
    wait_settled(hub, post_stripe(hub, json.dumps(dispute).encode()))
    code, out, _ = run(capsys, "incidents", "list", "--status", "open")
    _header, row = out.splitlines()
    incident_id, severity, status = row.split()[:3]
    assert (severity, status) == ("sev2", "open")

    code, out, _ = run(capsys, "incidents", "ack", incident_id, "--note", "looking")
    assert code == 0 and out.strip() == f"{incident_id}: Acknowledged by {ME}: looking"
    code, _, err = run(capsys, "incidents", "ack", incident_id)
    assert code == 1 and f"already acknowledged by {ME}" in err
    code, out, _ = run(capsys, "incidents", "show", incident_id)
    assert "status  acknowledged" in out
    assert ME in out and "acknowledged" in out.split("timeline:")[1]
    detail = hub.get(f"/admin/incidents/{incident_id}", headers=ROOT).json()
    assert detail["acknowledged_by"] == ME


def test_an_acknowledgement_from_the_terminal_reaches_slack(tmp_path, settings, capsys):
    from tests.fakes.slack import SlackServer

    with SlackServer() as slack:
        flow = settings.model_copy(
            update={"slack_bot_token": SecretStr(slack.token), "slack_api_url": slack.api_url}
        )
        with TestClient(create_app(flow)) as hub:
            dispute = p.stripe_event("charge.dispute.created", p.dispute())
            wait_settled(hub, post_stripe(hub, json.dumps(dispute).encode()))
            (message,) = wait_for(lambda: slack.messages("#incidents"), what="the message")
            incident_id = hub.get("/admin/incidents", headers=ROOT).json()["items"][0]["id"]
            assert run(capsys, "incidents", "ack", incident_id)[0] == 0
            # The terminal cannot reach an embedded hub's queue; the hub's housekeeping finds
            # the pending Slack calls within seconds and makes them.
            wait_for(lambda: slack.replies(message.channel, message.ts), 30, what="the thread line")
            (reply,) = slack.replies(message.channel, message.ts)
            assert reply.text == f"Acknowledged by {ME}"
