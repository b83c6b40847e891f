"""Routing rules end to end: signed webhooks into the real app (embedded), its workers
posting to a local Slack and GitHub, with HUB_RULES_FILE deciding where things go."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.incidents.models import Incident
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.fakes.github import GitHubServer
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.signing import github_request
from tests.test_incident_flow import buttons, press, rows, send, stripe, wait_for

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RULES = """
defaults:
  slack_channel: "#ops"
  github_repo: acme/ops
rules:
  - name: mute-sandbox
    match: {provider: github, where: 'payload.repository.full_name == "acme/sandbox"'}
    suppress: {}
  - name: big-disputes
    match: {provider: stripe, type: "charge.dispute.*", where: payload.data.object.amount >= 100000}
    route: {slack_channel: "#payments-oncall", severity: sev1, github_repo: acme/payments}
    continue: true
  - name: finance-too
    match: {provider: stripe, type: "charge.dispute.*", where: payload.data.object.amount >= 100000}
    route: {slack_channel: "#finance"}
  - name: by-amount
    match: {provider: stripe, where: payload.data.object.amount_due > 0}
    route: {slack_channel: "#billing"}
  - name: subs
    match: {provider: stripe, type: customer.subscription.deleted}
    incident:
      key: "stripe:sub:{{ payload.data.object.customer }}"
      title: "Subscription cancelled for {{ payload.data.object.customer }}"
      summary: "{{ payload.data.object.id }} was cancelled"
      severity: sev2
      resolve_when: {provider: stripe, type: customer.subscription.created}
  - name: checks
    match: {provider: github, type: "check_run.*", where: payload.check_run.conclusion == "failure"}
    incident:
      key: "github:check:{{ payload.check_run.name }}"
      title: "{{ payload.check_run.name }} failed"
"""
CHANNELS = ("ops", "payments-oncall", "finance", "billing", "incidents")


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer(channels=CHANNELS) as server:
        yield server


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer(repos=("acme/ops", "acme/payments")) as server:
        yield server


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture
def settings(sqlite_url: str, slack: SlackServer, github: GitHubServer, rules_file: Path):
    return make_settings(
        sqlite_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        github_token=github.token,
        github_api_url=github.api_url,
        rules_file=str(rules_file),
        rules_poll_s=0.2,
        routes_refresh_s=0.2,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def event_detail(client: TestClient, event_id: str, settled: bool = True) -> Any:
    def done() -> Any:
        found = client.get(f"/admin/events/{event_id}", headers=AUTH).json()
        return found if found["status"] in ("processed", "failed", "ignored") else None

    return wait_for(done, what=f"{event_id} settled") if settled else None


def subscription(type_: str, customer: str = "cus_9") -> dict[str, Any]:
    obj = {"id": f"sub_{uuid.uuid4().hex[:8]}", "object": "subscription", "customer": customer,
           "status": "canceled"}  # fmt: skip
    return p.stripe_event(type_, obj)


def test_a_rule_routes_to_two_channels_via_continue_and_both_messages_stay_current(
    client, slack, github, settings
):
    stored = stripe(client, p.stripe_event("charge.dispute.created", p.dispute(amount=250_000)))
    (first,) = wait_for(lambda: slack.messages("#payments-oncall"), what="the first channel's post")
    (second,) = wait_for(lambda: slack.messages("#finance"), what="the second channel's post")
    assert slack.messages("#ops") == []  # the default channel is not used
    assert "SEV1" in first.text.upper() and second.text == first.text
    (incident,) = rows(settings, Incident)
    assert incident.channels == ["#payments-oncall", "#finance"]
    assert (incident.severity, incident.rule) == ("sev1", "big-disputes, finance-too")
    wait_for(lambda: github.issues("acme/payments"), what="the issue in the routed repository")
    assert github.issues("acme/ops") == []
    detail = event_detail(client, stored["event_id"])
    assert detail["rule"] == "big-disputes, finance-too"
    assert detail["attempts"][-1]["rule"] == "big-disputes, finance-too"

    press(client, slack, incident.id, "incident.ack", "U1")
    for channel, message in (("#payments-oncall", first), ("#finance", second)):
        wait_for(lambda c=channel, m=message: slack.replies(c, m.ts), what=f"a reply in {channel}")
        (reply,) = slack.replies(channel, message.ts)
        assert reply.text == "Acknowledged by <@U1>"
        shown = wait_for(lambda c=channel: [m for m in slack.messages(c) if m.edits] or None)
        assert buttons(shown[0]) == ["incident.resolve"]
    assert slack.rate_limited == 0


def test_first_match_wins_and_the_catalogue_routes_to_the_files_default(client, slack, settings):
    stripe(client, p.stripe_event("charge.dispute.created", p.dispute(amount=4_999)))
    wait_for(lambda: slack.messages("#ops"), what="the post in the default channel")
    assert slack.messages("#payments-oncall") == [] and slack.messages("#finance") == []
    (incident,) = rows(settings, Incident)
    assert incident.rule is None and incident.github_repo == "acme/ops"


def test_a_suppressed_event_is_processed_recorded_and_raises_nothing(client, slack, settings):
    run = p.workflow_run("failure", "main", repo="acme/sandbox")
    body = send(client, "/webhooks/github", github_request("workflow_run", run))
    detail = event_detail(client, body["event_id"])
    assert detail["status"] == "processed"
    (attempt,) = detail["attempts"]
    assert (attempt["outcome"], attempt["rule"]) == ("suppressed", "mute-sandbox")
    assert attempt["detail"].startswith("by rule mute-sandbox: nothing raised for github:ci:")
    assert detail["rule"] == "mute-sandbox"
    assert rows(settings, Incident) == [] and slack.posts == 0


def test_an_incident_rule_opens_and_resolve_when_resolves_an_event_the_catalogue_ignores(
    client, slack, settings
):
    opened = stripe(client, subscription("customer.subscription.deleted"))
    (message,) = wait_for(lambda: slack.messages("#ops"), what="the rule's incident posted")
    assert "Subscription cancelled for cus_9" in message.text
    (incident,) = rows(settings, Incident)
    assert (incident.key, incident.severity, incident.rule) == ("stripe:sub:cus_9", "sev2", "subs")
    assert event_detail(client, opened["event_id"])["attempts"][0]["workflow"] == (
        "handlers.triggers.ruled.raise_by_rule"
    )
    stripe(client, subscription("customer.subscription.created"))
    wait_for(lambda: rows(settings, Incident)[0].status == "resolved", what="resolved by rule")
    wait_for(lambda: slack.replies("#ops", message.ts), what="the resolve in the thread")
    assert slack.replies("#ops", message.ts)[0].text == "Resolved by stripe: resolved by rule subs"


def test_a_glob_incident_rule_takes_kinds_nobody_routed_and_leaves_others_ignored(
    client, slack, settings
):
    check = {"action": "completed", "check_run": {"name": "lint", "conclusion": "failure"},
             "repository": {"full_name": "acme/app"}}  # fmt: skip
    body = send(client, "/webhooks/github", github_request("check_run", check))
    assert event_detail(client, body["event_id"])["status"] == "processed"
    wait_for(lambda: slack.messages("#ops"), what="the check run's incident")
    star = {"action": "created", "repository": {"full_name": "acme/app"}}
    other = send(client, "/webhooks/github", github_request("star", star))
    assert event_detail(client, other["event_id"])["status"] == "ignored"


def test_a_where_that_misses_does_not_fail_the_event_and_is_counted(client, slack, settings):
    # by-amount reads amount_due, which a dispute does not have: a miss, counted.
    stored = stripe(client, p.stripe_event("charge.dispute.created", p.dispute(amount=10)))
    assert event_detail(client, stored["event_id"])["status"] == "processed"
    wait_for(lambda: slack.messages("#ops"), what="the dispute posted by default")
    metrics = client.get("/metrics").text
    assert 'hub_rule_misses_total{rule="by-amount"} 1.0' in metrics
    assert 'hub_rule_matches_total{rule="subs"}' not in metrics


def test_a_template_that_raises_fails_the_event_with_the_rule_named_and_a_fix_lets_it_through(
    client, slack, settings, rules_file
):
    rules_file.write_text(
        RULES.replace(
            'payload.data.object.customer }}"\n      title',
            'payload.data.object.customer.id }}"\n      title',
        )
    )
    assert client.post("/admin/rules/reload", headers=AUTH).status_code == 200
    stored = stripe(client, subscription("customer.subscription.deleted"))
    detail = event_detail(client, stored["event_id"])
    assert detail["status"] == "failed"
    error = detail["attempts"][-1]["error"]
    assert error.startswith("TemplateFailed: rule subs (")
    assert "key:" in error and "has no attribute 'id'" in error
    rules_file.write_text(RULES)
    assert client.post("/admin/rules/reload", headers=AUTH).status_code == 200
    replay = client.post(f"/admin/events/{stored['event_id']}/replay", headers=AUTH)
    assert replay.status_code == 202, replay.text
    wait_for(lambda: slack.messages("#ops"), what="the incident after the fix")


def test_reload_refuses_an_invalid_file_and_keeps_the_rules_in_force(client, rules_file):
    before = client.get("/admin/rules", headers=AUTH).json()
    assert [r["name"] for r in before["rules"]][:2] == ["mute-sandbox", "big-disputes"]
    rules_file.write_text(
        "rules:\n  - name: x\n    match: {where: 'payload.a =='}\n    suppress: {}\n"
    )
    refused = client.post("/admin/rules/reload", headers=AUTH)
    assert refused.status_code == 422
    assert refused.json()["error"] == "invalid_rules"
    assert refused.json()["reason"].startswith(f"{rules_file}:3: rule x: match: where: Syntax")
    assert client.get("/admin/rules", headers=AUTH).json()["hash"] == before["hash"]
    rules_file.write_text("rules: []\n")
    ok = client.post("/admin/rules/reload", headers=AUTH).json()
    assert ok["rules"] == [] and ok["hash"] != before["hash"]
    audit = client.get("/admin/audit", headers=AUTH).json()["items"]
    assert [a["action"] for a in audit[:2]] == ["rules.reload", "rules.reload_refused"]
    assert audit[0]["detail"]["hash"] == ok["hash"]


def test_a_reloaded_rule_that_routes_a_new_kind_is_published_for_the_api(client, slack, rules_file):
    rules_file.write_text(
        RULES
        + """  - name: team-pings
    match: {provider: github, type: team.created}
    incident: {key: "github:team:{{ payload.team.name }}", title: "team {{ payload.team.name }}"}
"""
    )
    assert client.post("/admin/rules/reload", headers=AUTH).status_code == 200
    team = {"action": "created", "team": {"name": "alpha"}}

    def raised() -> bool:
        body = send(client, "/webhooks/github", github_request("team", team))
        return event_detail(client, body["event_id"])["status"] == "processed"

    wait_for(raised, what="the new kind routed (not stored ignored at ingest)")
    wait_for(lambda: slack.messages("#ops"), what="its incident")


def test_rules_need_a_token_with_the_right_scope(client):
    assert client.get("/admin/rules").status_code == 401
    created = client.post("/admin/tokens", headers=AUTH,
                          json={"name": "reader", "scopes": ["read"]}).json()  # fmt: skip
    reader = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/admin/rules", headers=reader).status_code == 200
    assert client.post("/admin/rules/reload", headers=reader).status_code == 403
    assert json.dumps(client.get("/admin/rules", headers=reader).json()).find(ADMIN_TOKEN) == -1
