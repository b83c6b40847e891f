"""Tokens and scopes, rate limits, the audit trail, retention and the OpenAPI of /admin,
through the real app."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from starlette.testclient import TestClient

from hub.admin.retention import run_retention
from hub.bootstrap import create_app
from hub.config import Settings
from hub.events.ids import new_event_id
from hub.events.models import Status, utcnow
from hub.events.store import event_bodies, events
from hub.runtime.db import make_engine
from tests.test_admin_api import TOKENS, make_settings, stripe_event, wait_settled
from tests.test_incident_flow import wait_for

ROOT = {"Authorization": f"Bearer {TOKENS[0]}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path))) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_token(client: TestClient, name: str, scopes: list[str]) -> str:
    r = client.post("/admin/tokens", json={"name": name, "scopes": scopes}, headers=ROOT)
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    assert token.startswith("hub_")
    return token


def test_a_scoped_token_reaches_only_what_its_scopes_allow(client):
    reader = make_token(client, "grafana", ["read"])
    event_id = stripe_event(client)
    wait_settled(client, event_id)

    assert client.get("/admin/events", headers=bearer(reader)).status_code == 200
    assert client.get("/admin/audit", headers=bearer(reader)).status_code == 200
    refused = client.post(f"/admin/events/{event_id}/replay", headers=bearer(reader))
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "forbidden",
        "reason": "token 'grafana' lacks the 'replay' scope (has: read)",
    }
    assert client.get("/admin/tokens", headers=bearer(reader)).status_code == 403

    replayer = make_token(client, "oncall-bot", ["replay"])
    assert (
        client.post(f"/admin/events/{event_id}/replay", headers=bearer(replayer)).status_code == 202
    )
    # `replay` alone does not read: scopes are not a ladder, except `admin`.
    assert client.get("/admin/events", headers=bearer(replayer)).status_code == 403
    boss = make_token(client, "ops-lead", ["admin"])
    assert client.get("/admin/tokens", headers=bearer(boss)).status_code == 200
    assert client.get("/admin/events", headers=bearer(boss)).status_code == 200


def test_tokens_are_listed_without_secrets_and_revoked_for_good(client):
    token = make_token(client, "ci", ["read"])
    listed = client.get("/admin/tokens", headers=ROOT).json()["items"]
    (ci,) = [t for t in listed if t["name"] == "ci"]
    assert ci["scopes"] == ["read"] and ci["revoked_at"] is None
    assert ci["prefix"] == token[:10]
    assert token not in json.dumps(listed)

    assert client.get("/admin/stats", headers=bearer(token)).status_code == 200
    assert client.delete("/admin/tokens/ci", headers=ROOT).status_code == 204
    after = client.get("/admin/stats", headers=bearer(token))
    assert after.status_code == 401
    assert client.delete("/admin/tokens/ci", headers=ROOT).status_code == 404
    again = client.post("/admin/tokens", json={"name": "ci", "scopes": ["read"]}, headers=ROOT)
    assert again.status_code == 409  # names are not reused: the audit trail stays unambiguous


def test_the_audit_trail_names_the_token_never_the_secret(client):
    token = make_token(client, "alice", ["replay", "read"])
    event_id = stripe_event(client)
    wait_settled(client, event_id)
    client.post(f"/admin/events/{event_id}/replay", headers=bearer(token))
    client.post(
        "/admin/replays", json={"provider": "stripe", "dry_run": True}, headers=bearer(token)
    )
    client.delete("/admin/tokens/alice", headers=ROOT)

    r = client.get("/admin/audit", headers=ROOT)
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(i["actor"], i["action"]) for i in items] == [
        ("env-token-1", "token.revoke"),
        ("alice", "replay.dry_run"),
        ("alice", "event.replay"),
        ("env-token-1", "token.create"),
    ]
    assert items[1]["detail"] == {"filter": {"provider": "stripe"}, "matched": 1}
    assert items[2]["target"] == event_id
    assert set(items[0]) == {"id", "at", "actor", "action", "target", "detail"}
    assert token not in r.text
    only = client.get("/admin/audit", params={"actor": "alice"}, headers=ROOT).json()["items"]
    assert {i["actor"] for i in only} == {"alice"}


def test_admin_requests_past_the_limit_get_429_naming_it(tmp_path):
    settings = make_settings(tmp_path, admin_rate_limit="3/minute")
    with TestClient(create_app(settings)) as client:
        answers = [client.get("/admin/stats", headers=ROOT) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["X-RateLimit-Limit"] == "3"
        assert answers[2].headers["X-RateLimit-Remaining"] == "0"
        limited = answers[3]
        assert 1 <= int(limited.headers["Retry-After"]) <= 61
        for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert header in limited.headers
        body = limited.json()
        assert body["error"] == "rate_limited"
        assert "admin (3 per 1 minute)" in body["reason"]
        # Per token: another token has its own budget.
        assert client.get("/admin/stats", headers=bearer(TOKENS[1])).status_code == 200


def test_guessing_admin_tokens_is_limited_per_address(tmp_path):
    settings = make_settings(tmp_path, unverified_rate_limit="2/minute")
    with TestClient(create_app(settings)) as client:
        codes = [client.get("/admin/stats", headers=bearer(f"guess-{i}")).status_code
                 for i in range(3)]  # fmt: skip
        assert codes == [401, 401, 429]
        assert client.get("/admin/stats", headers=ROOT).status_code == 200


def test_admin_limits_are_shared_by_processes_through_redis(tmp_path, redis_url, redis_namespace):
    settings = make_settings(
        tmp_path, admin_rate_limit="3/minute", redis_url=redis_url, redis_namespace=redis_namespace
    )
    # Two apps stand for two `hub serve` processes; their counts meet in Redis.
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        codes = [c.get("/admin/stats", headers=ROOT).status_code for c in (one, two, one, two)]
    assert codes == [200, 200, 200, 429]


def old_event(settings: Settings, days: float, status: Status) -> str:
    when = utcnow() - timedelta(days=days)
    event_id = new_event_id(int(when.timestamp() * 1000))
    row = {
        "id": event_id, "provider": "stripe", "delivery_id": f"evt_{uuid.uuid4().hex}",
        "type": "payout.paid", "status": status, "received_at": when, "updated_at": when,
        "headers": {"content-type": "application/json"},
    }  # fmt: skip
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(insert(events), row)
        conn.execute(insert(event_bodies), {"event_id": event_id, "body": b'{"id": "old"}'})
    engine.dispose()
    return event_id


def test_retention_empties_old_bodies_and_keeps_metadata(tmp_path):
    # No periodic job here: this test runs retention through the API, and only then.
    settings = make_settings(
        tmp_path, retain_processed_days=30, retain_failed_days=90, retention_interval_s=0
    )
    with TestClient(create_app(settings)) as client:
        old_done = old_event(settings, 31, Status.PROCESSED)
        old_ignored = old_event(settings, 45, Status.IGNORED)
        young_failed = old_event(settings, 31, Status.FAILED)
        old_failed = old_event(settings, 91, Status.FAILED)
        fresh = stripe_event(client)
        wait_settled(client, fresh)
        dry = client.post("/admin/retention/run", json={"dry_run": True}, headers=ROOT).json()
        assert dry == {"processed_redacted": 2, "failed_redacted": 1, "dry_run": True}
        r = client.post("/admin/retention/run", headers=ROOT)
        assert r.json() == {"processed_redacted": 2, "failed_redacted": 1, "dry_run": False}

        def shown(event_id: str) -> dict[str, Any]:
            got: dict[str, Any] = client.get(f"/admin/events/{event_id}", headers=ROOT).json()
            return got

        for gone in (old_done, old_ignored, old_failed):
            event = shown(gone)
            assert event["body"] == "" and event["redacted_at"] is not None
            assert event["type"] == "payout.paid" and event["headers"]
        for kept in (young_failed, fresh):
            assert shown(kept)["body"] != "" and shown(kept)["redacted_at"] is None
        refused = client.post(f"/admin/events/{old_failed}/replay", headers=ROOT)
        assert refused.status_code == 409 and refused.json()["error"] == "redacted"
        # A second run finds nothing left to do.
        again = client.post("/admin/retention/run", headers=ROOT).json()
        assert again["processed_redacted"] == again["failed_redacted"] == 0
        audit = client.get("/admin/audit", params={"action": "retention.run"}, headers=ROOT)
        assert [i["detail"]["processed_redacted"] for i in audit.json()["items"]] == [0, 2, 2]


def test_the_openapi_lists_every_admin_route_with_its_models(client):
    spec = client.get("/openapi.json").json()
    expected = {
        ("get", "/admin/events"): "EventPage",
        ("get", "/admin/events/{event_id}"): "EventDetail",
        ("get", "/admin/stats"): "Stats",
        ("post", "/admin/events/{event_id}/replay"): "ReplayOneOut",
        ("post", "/admin/replays"): "ReplayOut",
        ("get", "/admin/replays/{replay_id}"): "ReplayProgressOut",
        ("post", "/admin/replays/{replay_id}/cancel"): "ReplayCancelOut",
        ("get", "/admin/incidents"): "IncidentPage",
        ("get", "/admin/incidents/{incident_id}"): "IncidentDetailOut",
        ("post", "/admin/incidents/{incident_id}/ack"): "IncidentChangeOut",
        ("post", "/admin/incidents/{incident_id}/resolve"): "IncidentChangeOut",
        ("get", "/admin/audit"): "AuditPage",
        ("get", "/admin/rejections"): "RejectionPage",
        ("get", "/admin/tokens"): "TokenList",
        ("post", "/admin/tokens"): "TokenCreated",
        ("post", "/admin/retention/run"): "RetentionOut",
        ("get", "/admin/rules"): "RulesOut",
        ("post", "/admin/rules/reload"): "RulesOut",
        ("post", "/admin/rules/test"): "RulesTestOut",
        ("get", "/admin/silences"): "SilenceList",
        ("post", "/admin/silences"): "SilenceOut",
        ("delete", "/admin/silences/{silence_id}"): "SilenceOut",
    }
    for (method, path), model in expected.items():
        operation = spec["paths"][path][method]
        ok = next(c for c in operation["responses"] if c.startswith("2"))
        schema = operation["responses"][ok]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, (method, path)
        for code in ("401", "403", "429"):
            error = operation["responses"][code]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorOut"}
        assert operation["security"] == [{"AdminToken": []}]
    admin_paths = {p for p in spec["paths"] if p.startswith("/admin")}
    assert admin_paths == {path for _, path in expected} | {
        "/admin/incidents/{incident_id}/reopen",
        "/admin/tokens/{name}",
    }


def test_the_periodic_job_runs_retention_once_per_interval(tmp_path):
    settings = make_settings(tmp_path, retention_interval_s=3600)
    old = old_event(settings, 31, Status.PROCESSED)
    with TestClient(create_app(settings)) as client:
        shown = wait_for(
            lambda: (
                (e := client.get(f"/admin/events/{old}", headers=ROOT).json())["redacted_at"] and e
            )
        )
        assert shown["body"] == ""
        audit = client.get("/admin/audit", headers=ROOT).json()["items"]
        assert [(a["actor"], a["action"], a["detail"]["processed_redacted"]) for a in audit] == [
            ("scheduler", "retention.run", 1)
        ]


def test_retention_leaves_events_still_on_their_way(tmp_path):
    settings = make_settings(tmp_path)
    waiting = old_event(settings, 400, Status.QUEUED)
    engine = make_engine(settings.database_url)
    result = run_retention(engine, settings, "tester")
    assert (result.processed_redacted, result.failed_redacted) == (0, 0)
    with engine.connect() as conn:
        body = conn.execute(
            select(event_bodies.c.body).where(event_bodies.c.event_id == waiting)
        ).scalar_one()
    engine.dispose()
    assert bytes(body) == b'{"id": "old"}'


def test_forged_deliveries_are_shed_per_address_and_signed_ones_never(tmp_path):
    settings = make_settings(tmp_path, unverified_rate_limit="2/minute")
    forged = {"content-type": "application/json", "stripe-signature": "t=1,v1=00"}
    with TestClient(create_app(settings)) as client:
        # Told why (401) up to 10 x the limit; shed (429) past it, the hub protecting itself.
        codes = [client.post("/webhooks/stripe", content=b"{}", headers=forged).status_code
                 for _ in range(21)]  # fmt: skip
        assert codes == [401] * 20 + [429]
        limited = client.post("/webhooks/stripe", content=b"{}", headers=forged)
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert "unverified_flood (20 per 1 minute)" in limited.json()["reason"]
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["x-ratelimit-limit"] == "20"
        # The same address, signed: always taken (GitHub would not retry a 429).
        for _ in range(5):
            stripe_event(client)
