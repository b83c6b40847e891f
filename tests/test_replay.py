"""An admin's view of failures: Slack was down, the events show as failed with the reason,
a replay after the fix makes exactly the missing side effects, and nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.events.models import Event
from hub.incidents.models import Effect, Incident
from hub.runtime.db import make_engine
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.test_incident_flow import rows, stripe, wait_for

ROOT = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def replay_settings(sqlite_url: str, slack: SlackServer) -> Settings:
    # Slack calls give up after two failures, quickly: the outage outlasts the retries.
    return make_settings(
        sqlite_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        effect_max_failures=2,
        effect_min_backoff_s=0.05,
        replay_per_second=200.0,
    )


@pytest.fixture
def client(replay_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(replay_settings)) as c:
        yield c


def event(client: TestClient, event_id: str) -> dict[str, Any]:
    r = client.get(f"/admin/events/{event_id}", headers=ROOT)
    assert r.status_code == 200
    found: dict[str, Any] = r.json()
    return found


def status_is(client: TestClient, event_id: str, status: str) -> bool:
    return event(client, event_id)["status"] == status


def slack_calls(slack: SlackServer) -> list[str]:
    return [c.method for c in slack.calls if c.method.startswith("chat.")]


def test_slack_down_then_fixed_a_replay_posts_exactly_the_missing_message(client, slack):
    slack.fail_next("chat.postMessage", 2, status=503)  # the outage: both tries fail
    dispute = stripe(client, p.stripe_event("charge.dispute.created", p.dispute()))["event_id"]
    wait_for(lambda: status_is(client, dispute, "failed"), what="the event to fail")

    failed = client.get("/admin/events", params={"status": "failed"}, headers=ROOT).json()
    assert [e["id"] for e in failed["items"]] == [dispute]
    shown = event(client, dispute)
    assert shown["last_error"].startswith("slack.post: ")
    outcomes = [(a["workflow"], a["outcome"]) for a in shown["attempts"]]
    assert outcomes == [
        ("handlers.billing.open_dispute_incident", "ok"),
        ("effect:slack.post", "error"),
    ]
    assert slack.posts == 0

    dry = client.post("/admin/replays", json={"status": "failed", "dry_run": True}, headers=ROOT)
    assert dry.status_code == 200
    assert dry.json()["matched"] == 1 and dry.json()["replayed"] == 0
    r = client.post("/admin/replays", json={"status": "failed"}, headers=ROOT)
    assert r.status_code == 202
    assert r.json()["matched"] == 1 and r.json()["replayed"] == 1
    replay_id = r.json()["replay_id"]

    wait_for(lambda: slack.posts == 1, what="the missing post")
    wait_for(lambda: status_is(client, dispute, "processed"), what="the event to complete")
    progress = wait_for(
        lambda: (
            (got := client.get(f"/admin/replays/{replay_id}", headers=ROOT).json())["done"] and got
        )
    )
    assert progress["by_status"] == {"processed": 1}
    (incident,) = client.get("/admin/incidents", headers=ROOT).json()["items"]
    assert incident["occurrences"] == 1  # the replay did not count the dispute twice
    assert incident["slack"] is not None

    # Pressing it again: the event is processed now, and nothing more happens in Slack.
    before = slack_calls(slack)
    again = client.post(f"/admin/events/{dispute}/replay", headers=ROOT)
    assert again.status_code == 202 and again.json()["status"] == "queued"
    wait_for(lambda: status_is(client, dispute, "processed") and event(client, dispute)["runs"])
    wait_for(lambda: not client.get("/admin/events", params={"status": "queued"},
                                    headers=ROOT).json()["items"])  # fmt: skip
    assert slack_calls(slack) == before
    assert slack.posts == 1


def test_replaying_processed_events_makes_no_side_effects(client, slack, replay_settings):
    ids = [stripe(client, p.stripe_event("charge.dispute.created", p.dispute()))["event_id"]]
    ids += [stripe(client, p.stripe_event("payout.updated", {"id": f"po_{i}"}))["event_id"]
            for i in range(5)]  # fmt: skip
    wait_for(lambda: all(event(client, i)["status"] in ("processed", "ignored") for i in ids))
    wait_for(lambda: slack.posts == 1, what="the dispute message")
    before = slack_calls(slack)

    r = client.post("/admin/replays", json={"provider": "stripe"}, headers=ROOT)
    assert r.json()["matched"] == 6 and r.json()["replayed"] == 6
    wait_for(
        lambda: client.get(f"/admin/replays/{r.json()['replay_id']}", headers=ROOT).json()["done"]
    )
    assert slack_calls(slack) == before
    (incident,) = rows(replay_settings, Incident)
    assert incident.occurrences == 1
    effects = rows(replay_settings, Effect)
    assert [e.kind for e in effects] == ["slack.post"]


def test_a_bulk_replay_is_paced_and_reports_progress(sqlite_url, slack):
    settings = make_settings(sqlite_url, replay_per_second=100.0)
    with TestClient(create_app(settings)) as client:
        ids = [stripe(client, p.stripe_event("payout.updated", {"id": f"po_{i}"}))["event_id"]
               for i in range(300)]  # fmt: skip
        wait_for(lambda: all(e["status"] == "ignored" for e in _all(client)), what="settled")
        r = client.post("/admin/replays", json={"type": "payout.updated"}, headers=ROOT).json()
        assert (r["matched"], r["replayed"], r["skipped"]) == (300, 300, 0)
        # 300 events at 100 a second: handed over across three seconds, not at once.
        progress = client.get(f"/admin/replays/{r['replay_id']}", headers=ROOT).json()
        span = _seconds(progress["paced_until"]) - _seconds(progress["created_at"])
        assert span == pytest.approx(3.0, abs=0.05)
        assert progress["remaining"] > 0
        done = wait_for(
            lambda: (
                (g := client.get(f"/admin/replays/{r['replay_id']}", headers=ROOT).json())["done"]
                and g
            ),
            timeout=30,
        )
        assert done["by_status"] == {"ignored": 300}
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        replayed = conn.execute(select(Event.runs).where(Event.id.in_(ids))).scalars().all()  # type: ignore[attr-defined]
    engine.dispose()
    assert set(replayed) == {1}  # the retry budget starts again with a replay


def test_an_admin_acknowledges_like_the_button(client, slack):
    stripe(client, p.stripe_event("charge.dispute.created", p.dispute()))
    (message,) = wait_for(lambda: slack.messages("#incidents"), what="the incident message")
    (incident,) = client.get("/admin/incidents", params={"status": "open"}, headers=ROOT).json()[
        "items"
    ]
    by_severity = {
        sev: len(
            client.get("/admin/incidents", params={"severity": sev}, headers=ROOT).json()["items"]
        )
        for sev in ("sev1", "sev2")
    }
    assert by_severity == {"sev1": 0, "sev2": 1}
    r = client.post(f"/admin/incidents/{incident['id']}/ack", json={"note": "on it"}, headers=ROOT)
    assert r.status_code == 200, r.text
    assert r.json()["incident"]["status"] == "acknowledged"
    assert r.json()["message"] == "Acknowledged by env-token-1: on it"
    wait_for(lambda: slack.replies(message.channel, message.ts), what="the thread reply")
    (reply,) = slack.replies(message.channel, message.ts)
    assert reply.text == "Acknowledged by env-token-1: on it"
    wait_for(lambda: [m for m in slack.messages("#incidents") if m.edits], what="the update")

    twice = client.post(f"/admin/incidents/{incident['id']}/ack", headers=ROOT)
    assert twice.status_code == 409
    assert twice.json()["reason"].endswith("already acknowledged by env-token-1")
    resolved = client.post(f"/admin/incidents/{incident['id']}/resolve", headers=ROOT)
    assert resolved.json()["incident"]["status"] == "resolved"
    detail = client.get(f"/admin/incidents/{incident['id']}", headers=ROOT).json()
    assert [(t["actor"], t["action"]) for t in detail["timeline"]] == [
        ("stripe", "opened"),
        ("env-token-1", "acknowledged"),
        ("env-token-1", "resolved"),
    ]
    audit = client.get("/admin/audit", headers=ROOT).json()["items"]
    assert [(a["action"], a["target"]) for a in audit] == [
        ("incident.resolve", incident["id"]),
        ("incident.ack", incident["id"]),
    ]
    assert client.post("/admin/incidents/inc_nope/ack", headers=ROOT).status_code == 404


def _all(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = client.get("/admin/events", params=params, headers=ROOT).json()
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            return items


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()
