"""End to end with a Stripe key: signed webhooks into the real app (embedded mode), its
workers reading a local server that answers like Stripe's API and posting to a fake Slack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.events.models import Event, EventBody
from hub.incidents.models import Incident
from tests.conftest import make_settings
from tests.fakes.slack import SlackServer
from tests.fakes.stripe import API_KEY, StripeServer
from tests.handlers import payloads as p
from tests.signing import stripe_request
from tests.test_incident_flow import rows, send, wait_for

WON = "dp_1PQ8xvLkdIwHu7ixWonWonWo"
OPEN = "dp_1PQ8xvLkdIwHu7ixOpenOpen"


@pytest.fixture
def fake() -> Iterator[StripeServer]:
    with StripeServer() as server:
        yield server
        assert server.errors == []


@pytest.fixture
def flow_settings(sqlite_url: str, slack: SlackServer, fake: StripeServer) -> Settings:
    return make_settings(
        sqlite_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        stripe_api_key=API_KEY,
        stripe_api_base=fake.api_base,
    )


@pytest.fixture
def client(flow_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(flow_settings)) as c:
        yield c


def settled(settings: Settings, delivery_id: str) -> Any:
    def check() -> Any:
        found = [e for e in rows(settings, Event) if e.delivery_id == delivery_id]
        return found[0] if found and found[0].status == "processed" else None

    return wait_for(check, what=f"{delivery_id} processed")


def test_thin_and_late_snapshot_events_act_on_what_stripe_reports_now(
    client, slack, fake, flow_settings
):
    fake.put(p.dispute(dispute_id=WON, status="won"))
    fake.put(p.dispute(dispute_id=OPEN, status="needs_response"))
    # A late `created` for a dispute already won: nothing is opened, nothing posted.
    late = p.stripe_event("charge.dispute.created", p.dispute(dispute_id=WON), event_id="evt_a")
    send(client, "/webhooks/stripe", stripe_request(late))
    # A thin event for the open one: stored raw, its dispute fetched, an incident posted.
    thin = json.dumps(
        {
            "id": "evt_test_65SxThinE2E",
            "object": "v2.core.event",
            "type": "v1.charge.dispute.created",
            "livemode": False,
            "created": "2025-06-10T06:13:20.000Z",
            "related_object": {"id": OPEN, "type": "dispute", "url": f"/v1/disputes/{OPEN}"},
        }
    ).encode()
    send(client, "/webhooks/stripe", stripe_request(thin))
    (message,) = wait_for(lambda: slack.messages("#incidents"), what="the incident message")
    assert OPEN in message.text or "fraudulent" in message.text
    settled(flow_settings, "evt_a")
    stored = settled(flow_settings, "evt_test_65SxThinE2E")
    (body,) = [b.body for b in rows(flow_settings, EventBody) if b.event_id == stored.id]
    assert bytes(body) == thin and stored.type == "v1.charge.dispute.created"
    (incident,) = rows(flow_settings, Incident)
    assert incident.key == f"stripe:dispute:{OPEN}" and incident.status == "open"
    assert sorted(fake.fetched()) == sorted([f"/v1/disputes/{WON}", f"/v1/disputes/{OPEN}"])
