"""Silences: an incident opened under one is tracked and counted but not posted; posted
when the silence ends if it is still live, never if it resolved meanwhile; expiring a
silence posts what it held at once. Resolves are never silenced."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.cli.main import main
from hub.incidents.models import Incident
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.fakes.github import GitHubServer
from tests.handlers import payloads as p
from tests.test_incident_flow import rows, stripe, wait_for

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DISPUTES = 'provider == "stripe" && type.startsWith("charge.dispute.")'


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer(repos=("acme/ops",)) as server:
        yield server


@pytest.fixture
def settings(sqlite_url, slack, github):
    return make_settings(
        sqlite_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        github_token=github.token,
        github_api_url=github.api_url,
        github_incident_repo="acme/ops",
        escalate_after_s=0.5,
    )


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def silence(client: TestClient, seconds: float, match: str = DISPUTES) -> dict:
    ends = datetime.now(UTC) + timedelta(seconds=seconds)
    body = {"match": match, "ends_at": ends.isoformat(), "reason": "deploy"}
    r = client.post("/admin/silences", headers=AUTH, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_an_incident_opened_under_a_silence_is_posted_when_it_ends_if_still_live(
    client, slack, github, settings
):
    held = silence(client, 3.0)
    stripe(client, p.stripe_event("charge.dispute.created", p.dispute()))
    (incident,) = wait_for(lambda: rows(settings, Incident), what="the incident tracked")
    assert incident.silence_id == held["id"]
    time.sleep(1.0)
    assert slack.messages("#incidents") == [] and github.issues("acme/ops") == []
    (message,) = wait_for(lambda: slack.messages("#incidents"), timeout=20,
                          what="the post once the silence ended")  # fmt: skip
    assert "Dispute" in message.text
    wait_for(lambda: github.issues("acme/ops"), what="the tracking issue after the silence")
    assert "hub_incidents_silenced_total 1.0" in client.get("/metrics").text
    # The escalation clock starts when the silence ends, not when the incident opened.
    wait_for(lambda: slack.replies("#incidents", message.ts), timeout=20, what="escalation")


def test_an_incident_resolved_under_the_silence_is_never_posted(client, slack, github, settings):
    silence(client, 3.0)
    stripe(client, p.stripe_event("charge.dispute.created", p.dispute()))
    wait_for(lambda: rows(settings, Incident), what="the incident tracked")
    stripe(client, p.stripe_event("charge.dispute.closed", p.dispute(status="won")))
    wait_for(lambda: rows(settings, Incident)[0].status == "resolved", what="resolved")
    time.sleep(5.0)  # past the silence's end and a delivery round
    assert slack.posts == 0 and github.issues("acme/ops") == []


def test_expiring_a_silence_posts_what_it_held_at_once(client, slack, settings):
    held = silence(client, 3600)
    stripe(client, p.stripe_event("charge.dispute.created", p.dispute()))
    wait_for(lambda: rows(settings, Incident), what="the incident tracked")
    assert slack.messages("#incidents") == []
    expired = client.delete(f"/admin/silences/{held['id']}", headers=AUTH)
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    wait_for(lambda: slack.messages("#incidents"), what="the post after the expiry")
    listed = client.get("/admin/silences", headers=AUTH).json()["items"]
    assert listed == []
    everything = client.get("/admin/silences?all=true", headers=AUTH).json()["items"]
    assert [s["id"] for s in everything] == [held["id"]]
    assert everything[0]["expired_by"] == everything[0]["created_by"] == "env-token-1"
    actions = [a["action"] for a in client.get("/admin/audit", headers=AUTH).json()["items"]]
    assert actions[:2] == ["silence.expire", "silence.add"]


def test_a_silence_that_does_not_match_changes_nothing(client, slack, settings):
    silence(client, 3600, match='provider == "github"')
    stripe(client, p.stripe_event("charge.dispute.created", p.dispute()))
    wait_for(lambda: slack.messages("#incidents"), what="posted at once")


def test_bad_silences_are_refused_with_a_reason(client):
    ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    bad = client.post(
        "/admin/silences", headers=AUTH, json={"match": "payload.a ==", "ends_at": ends}
    )
    assert bad.status_code == 422 and bad.json()["reason"].startswith("match: Syntax error")
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    old = client.post("/admin/silences", headers=AUTH, json={"match": "true", "ends_at": past})
    assert old.status_code == 422 and "in the past" in old.json()["reason"]
    assert client.delete("/admin/silences/sil_nope", headers=AUTH).status_code == 404
    assert (
        client.post("/admin/silences", json={"match": "true", "ends_at": ends}).status_code == 401
    )
    assert client.get("/admin/silences", headers=AUTH).json()["items"] == []


def test_the_cli_adds_lists_and_expires_silences(settings, monkeypatch, capsys):
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_DATABASE_URL", settings.database_url)
    main(["silences", "add", 'provider == "github"', "--for", "2h", "--reason", "upgrade"])
    added = capsys.readouterr().out
    assert added.startswith("sil_") and 'provider == "github"' in added
    silence_id = added.split(":")[0]
    main(["silences", "list"])
    listed = capsys.readouterr().out
    assert silence_id in listed and "active" in listed and "upgrade" in listed
    main(["silences", "expire", silence_id])
    assert capsys.readouterr().out.startswith(f"{silence_id}: expired at ")
    main(["silences", "list"])
    assert silence_id not in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main(["silences", "add", "payload.a ==", "--for", "1h"])
    assert bad.value.code == 1
    assert capsys.readouterr().err.startswith("hub: match: Syntax error")
