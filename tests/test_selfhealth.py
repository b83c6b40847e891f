"""The hub reports on itself through its own incident flow: failing events, a deep queue and
Slack rate limiting open an incident each, resolved when a later check finds them clear."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy import insert, update
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.events.ids import new_event_id
from hub.events.models import Status, utcnow
from hub.events.store import event_bodies, events
from hub.runtime.db import make_engine
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.test_incident_flow import stripe, wait_for

ROOT = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def health_settings(sqlite_url: str, slack: SlackServer, **thresholds: object) -> Settings:
    values: dict[str, object] = {
        "health_failed_events": 0,
        "health_queue_depth": 0,
        "health_slack_429s": 0,
        "health_check_interval_s": 0.3,
        "health_clear_after_s": 1.0,
    }
    return make_settings(
        sqlite_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        **(values | thresholds),
    )


def store(settings: Settings, n: int, status: Status) -> list[str]:
    now = utcnow()
    rows = [
        {"id": new_event_id(), "provider": "stripe", "delivery_id": f"evt_{uuid.uuid4().hex}",
         "type": "payout.paid", "status": status, "received_at": now, "updated_at": now,
         # Far off: the sweeper leaves these alone while the test looks at them.
         "deadline": now + timedelta(hours=1) if status == Status.QUEUED else None,
         "headers": {}}
        for _ in range(n)
    ]  # fmt: skip
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(insert(events), rows)
        conn.execute(insert(event_bodies), [{"event_id": r["id"], "body": b"{}"} for r in rows])
    engine.dispose()
    return [r["id"] for r in rows]


def settle(settings: Settings, ids: list[str]) -> None:
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(update(events).where(events.c.id.in_(ids)).values(status=Status.PROCESSED))
    engine.dispose()


def hub_incident(client: TestClient, status: str) -> list[dict[str, object]]:
    items = client.get("/admin/incidents", params={"status": status}, headers=ROOT).json()["items"]
    return [i for i in items if str(i["key"]).startswith("hub:health:")]


def test_failing_events_open_an_incident_that_resolves_when_cleared(sqlite_url, slack):
    settings = health_settings(sqlite_url, slack, health_failed_events=3)
    with TestClient(create_app(settings)) as client:
        failed = store(settings, 3, Status.FAILED)
        (incident,) = wait_for(lambda: hub_incident(client, "open"), what="the health incident")
        assert incident["key"] == "hub:health:failed-events"
        assert incident["title"] == "Events are failing: 3 in the last 15 min"
        assert incident["severity"] == "sev2"
        (message,) = wait_for(lambda: slack.messages("#incidents"), what="its Slack message")
        # Still failing at the next checks: the same incident, no new message.
        store(settings, 2, Status.FAILED)
        time.sleep(1.0)  # three more checks
        assert len(slack.messages("#incidents")) == 1
        assert [i["id"] for i in hub_incident(client, "open")] == [incident["id"]]
        settle(settings, failed)
        wait_for(lambda: not hub_incident(client, "open") or None, what="still open")
        wait_for(lambda: hub_incident(client, "resolved"), what="resolved")
        # 2 failed are left, below the threshold of 3: cleared.
        (reply,) = wait_for(lambda: slack.replies(message.channel, message.ts), what="thread")
        assert reply.text.startswith("Resolved by hub: cleared: 2 events failed")
        assert len(slack.messages("#incidents")) == 1


def test_a_deep_queue_opens_an_incident(sqlite_url, slack):
    settings = health_settings(sqlite_url, slack, health_queue_depth=20)
    with TestClient(create_app(settings)) as client:
        waiting = store(settings, 25, Status.QUEUED)
        (incident,) = wait_for(lambda: hub_incident(client, "open"), what="the health incident")
        assert incident["key"] == "hub:health:queue-depth"
        assert incident["title"] == "Events are piling up: 25 waiting to be processed"
        settle(settings, waiting)
        wait_for(lambda: hub_incident(client, "resolved"), what="resolved")


def test_slack_rate_limiting_opens_an_incident_and_resolves_once_slack_answers_again(
    sqlite_url, slack
):
    # Checks every 0.3 s here, and the shared limiter lets about one 429 a second through:
    # one 429 between two checks is the threshold. Clear for 3 s before resolving: longer
    # than the gaps between 429s while Slack limits (its Retry-After is 1 s).
    settings = health_settings(
        sqlite_url, slack, health_slack_429s=1, health_clear_after_s=3.0,
        slack_channel_interval_s=1.5,  # margin, so that Slack's own limit is met rarely
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        slack.force_429(retry_after_s=1, for_s=2.5)
        for i in range(3):  # three incidents whose posts meet the 429s
            stripe(client, p.stripe_event("charge.dispute.created", p.dispute(f"dp_{i}")))
        first = wait_for(lambda: hub_incident(client, "open") or hub_incident(client, "resolved"),
                         what="the health incident")[0]  # fmt: skip
        assert first["key"] == "hub:health:slack-rate-limited"

        # Once Slack answers again, checks find no new 429s and resolve it. (A busy machine
        # can still meet Slack's own one-post-a-second limit later, which is a new episode
        # and a new incident: so "at least one", each resolved and posted once.)
        def titles() -> list[str]:
            return [m.text or "" for m in slack.messages("#incidents")]

        wait_for(lambda: sum("Dispute" in t for t in titles()) == 3, 30, what="3 disputes")
        wait_for(lambda: not hub_incident(client, "open") or None, 30, what="all resolved")
        episodes = wait_for(
            lambda: (
                (n := len(hub_incident(client, "resolved")))
                and sum("rate limiting" in t for t in titles()) == n
                and n
            ),
            what="one message per health incident",
        )
        assert episodes >= 1
        assert sum("Dispute" in t for t in titles()) == 3
