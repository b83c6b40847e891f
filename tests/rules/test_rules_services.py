"""Rules in production mode: PostgreSQL, Redis and a `hub worker` process. Two channels via
`continue`, paced per channel and shared by the workers; SIGHUP to `hub worker` reloads the
rules for its worker processes. Required under CI=true; skipped with a reason elsewhere."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.incidents.models import Incident
from tests.conftest import ADMIN_TOKEN, with_slack
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.test_incident_flow import press, rows, stripe, wait_for

pytestmark = pytest.mark.services
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RULES = """
defaults: {slack_channel: "#ops"}
rules:
  - name: disputes
    match: {provider: stripe, type: "charge.dispute.*"}
    route: {slack_channel: "#payments"}
    continue: true
  - name: disputes-finance
    match: {provider: stripe, type: "charge.dispute.*"}
    route: {slack_channel: "#finance"}
"""
SUBS = """  - name: subs
    match: {provider: stripe, type: customer.subscription.deleted}
    incident: {key: "stripe:sub:{{ payload.data.object.customer }}", title: "cancelled"}
"""


@pytest.fixture
def slack():
    with SlackServer(channels=("ops", "payments", "finance")) as server:
        yield server


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture
def prod_settings(prod_settings: Settings, slack: SlackServer, rules_file: Path) -> Settings:
    return with_slack(prod_settings, slack, rules_file=str(rules_file), rules_poll_s=0.5,
                      routes_refresh_s=0.5)  # fmt: skip


def test_several_channels_paced_per_channel_and_sighup_reloads_hub_worker(
    prod_settings, hub_worker, slack, rules_file
):
    worker = hub_worker()
    with TestClient(create_app(prod_settings)) as client:
        for n in range(4):  # four incidents, two channels each: posts paced per channel
            stripe(client, p.stripe_event("charge.dispute.created", p.dispute(f"dp_{n}")))
        wait_for(lambda: len(slack.messages("#payments")) == 4, 30, "four posts in #payments")
        wait_for(lambda: len(slack.messages("#finance")) == 4, 30, "four posts in #finance")
        assert slack.messages("#ops") == [] and slack.rate_limited == 0

        def first() -> Incident:
            return next(i for i in rows(prod_settings, Incident) if i.key.endswith("dp_0"))

        # Slack has both posts as soon as they are made; the incident's row has their ts
        # once the worker's commit after the calls has landed.
        wait_for(lambda: first().slack_ts and first().mirrors, 30, "both posts recorded")
        incident = first()
        assert incident.channels == ["#payments", "#finance"]
        press(client, slack, incident.id, "incident.ack", "U7")
        for channel, ts in (
            ("#payments", incident.slack_ts),
            ("#finance", incident.mirrors[0]["ts"]),
        ):
            wait_for(lambda c=channel, t=ts: slack.replies(c, t), 30, f"the reply in {channel}")
            assert slack.replies(channel, ts)[0].text == "Acknowledged by <@U7>"

        rules_file.write_text(RULES + SUBS)
        os.kill(worker.pid, signal.SIGHUP)  # the supervisor records it; its children follow
        wait_for(lambda: client.get("/admin/rules", headers=AUTH).json()["rules"][-1:]
                 and client.get("/admin/rules", headers=AUTH).json()["rules"][-1]["name"]
                 == "subs", 20, "the API to follow the reload")  # fmt: skip

        def raised() -> bool:
            obj = {"id": f"sub_{uuid.uuid4().hex[:6]}", "customer": "cus_1"}
            stripe(client, p.stripe_event("customer.subscription.deleted", obj))
            time.sleep(0.5)
            return any("cancelled" in m.text for m in slack.messages("#ops"))

        wait_for(raised, 30, "the worker process to raise by the reloaded rules")
    assert slack.rate_limited == 0
