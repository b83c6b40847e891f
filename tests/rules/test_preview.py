"""`hub rules test` and `POST /admin/rules/test`: a draft tried on the stored history, with
no side effects, compared with the rules in force."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.cli.main import main
from hub.incidents.models import Effect, Incident
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.handlers import payloads as p
from tests.signing import github_request
from tests.test_incident_flow import rows, send, stripe, wait_for

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DRAFT = """
rules:
  - name: mute-sandbox
    match: {provider: github, where: 'payload.repository.full_name == "acme/sandbox"'}
    suppress: {}
  - name: big-disputes
    match: {provider: stripe, type: "charge.dispute.*", where: payload.data.object.amount >= 100000}
    route: {slack_channel: "#payments-oncall", severity: sev1}
    continue: true
  - name: finance-too
    match: {provider: stripe, type: "charge.dispute.*", where: payload.data.object.amount >= 100000}
    route: {slack_channel: "#finance"}
  - name: subs
    match: {provider: stripe, type: customer.subscription.deleted}
    incident: {key: "stripe:sub:{{ payload.data.object.customer }}", title: cancelled}
"""


@pytest.fixture
def settings(sqlite_url):
    return make_settings(sqlite_url, slack_incident_channel="#incidents")


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def history(client, settings) -> None:
    """Two disputes (one big), a red CI run on the sandbox and one on the app, a cancelled
    subscription (ignored today: nothing routes it), processed under the catalogue alone."""
    for n, amount in enumerate((250_000, 4_999)):
        stripe(client, p.stripe_event("charge.dispute.created", p.dispute(f"dp_{n}", amount)))
    for repo in ("acme/sandbox", "acme/app"):
        run = p.workflow_run("failure", "main", repo=repo)
        send(client, "/webhooks/github", github_request("workflow_run", run))
    obj = {"id": "sub_1", "object": "subscription", "customer": "cus_9"}
    stripe(client, p.stripe_event("customer.subscription.deleted", obj))
    wait_for(lambda: len(rows(settings, Incident)) == 4, what="the catalogue's four incidents")


def test_a_draft_on_stored_events_says_what_each_rule_matched_and_what_would_change(
    client, settings, history
):
    effects_before = len(rows(settings, Effect))
    r = client.post("/admin/rules/test", headers=AUTH, json={"rules": DRAFT, "since": "1h"})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["events"] == 5 and result["source"] == "draft"
    matched = {rule["name"]: rule["matched"] for rule in result["rules"]}
    assert matched == {"mute-sandbox": 1, "big-disputes": 1, "finance-too": 1, "subs": 1}
    proposed, in_force = result["proposed"], result["in_force"]
    assert in_force["incidents"] == 4 and in_force["slack_posts"] == {"#incidents": 4}
    assert proposed["incidents"] == 4  # sandbox muted, the subscription raised
    assert proposed["suppressed"] == 1
    assert proposed["slack_posts"] == {"#incidents": 3, "#payments-oncall": 1, "#finance": 1}
    assert proposed["github_issues"] == in_force["github_issues"] == {}  # no token: none
    assert result["changed"] == 3
    kinds = sorted(d["kind"] for d in result["differences"])
    assert kinds == ["github workflow_run.completed", "stripe charge.dispute.created",
                     "stripe customer.subscription.deleted"]  # fmt: skip
    big = next(d for d in result["differences"] if d["kind"].endswith("dispute.created"))
    assert big["proposed"] == "open stripe:dispute:dp_0 (sev1) -> #payments-oncall, #finance"
    assert big["in_force"].startswith("open stripe:dispute:dp_0 (sev2) -> #incidents")
    # Nothing was done: no incident, no effect, no change to what is in force.
    assert len(rows(settings, Incident)) == 4 and len(rows(settings, Effect)) == effects_before
    assert client.get("/admin/rules", headers=AUTH).json()["rules"] == []


def test_filters_and_errors(client, history):
    github_only = {"rules": DRAFT, "since": "1h", "provider": "github"}
    only = client.post("/admin/rules/test", headers=AUTH, json=github_only).json()
    assert only["events"] == 2
    bad = client.post("/admin/rules/test", headers=AUTH, json={"rules": "rules: [1]"})
    assert bad.status_code == 422 and "rule #1 is not a mapping" in bad.json()["reason"]
    span = client.post("/admin/rules/test", headers=AUTH, json={"rules": DRAFT, "since": "a week"})
    assert span.status_code == 422 and span.json()["reason"].startswith("body.since: ")
    for too_long in ("1000000000d", "3651d", "5000000d"):
        body = {"rules": DRAFT, "since": too_long}
        long = client.post("/admin/rules/test", headers=AUTH, json=body)
        assert long.status_code == 422, too_long
        assert "span of time too long" in long.json()["reason"]


def test_hub_rules_test_prints_the_same_on_the_command_line(
    settings, history, tmp_path, monkeypatch, capsys
):
    draft = tmp_path / "draft.yaml"
    draft.write_text(DRAFT)
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HUB_SLACK_INCIDENT_CHANNEL", "#incidents")
    main(["rules", "test", str(draft), "--since", "1h"])
    out = capsys.readouterr().out
    assert f"{draft} (hash " in out and "on 5 events since" in out
    assert "against the built-in catalogue alone" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "big-disputes route 1 0 " + f"{draft}:6" in lines
    assert "slack #payments-oncall 0 1 +1" in lines
    assert "suppressed 0 1 +1" in lines
    assert "3 events decided differently:" in lines
    main(["rules", "test", str(draft), "--since", "1h", "--json"])
    assert json.loads(capsys.readouterr().out)["changed"] == 3
