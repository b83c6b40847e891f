"""The admin read API through the real app: signed webhooks in, /admin answers out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import stripe
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.events.models import Status
from hub.events.store import EventStore, NewEvent
from hub.runtime.db import make_engine
from hub.runtime.migrate import upgrade

TOKENS = ["t0k3n-a", "t0k3n-b"]
STRIPE_SECRET = "whsec_admin_api_tests"
GITHUB_SECRET = "gh-admin-api-tests"
ADMIN_PATHS = ["/admin/events", "/admin/events/evt_01ARZ3NDEKTSV4RRFFQ69G5FAV", "/admin/stats"]
STATUSES = {s.value for s in Status}
SUMMARY_FIELDS = {"id", "provider", "type", "delivery_id", "status", "received_at", "updated_at"}
SUMMARY_FIELDS |= {"runs", "last_error", "redacted_at"}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    url = f"sqlite:///{tmp_path}/hub.db"
    upgrade(url)
    values: dict[str, Any] = {
        "database_url": url,
        "redis_url": None,
        "stripe_webhook_secrets": [STRIPE_SECRET],
        "github_webhook_secrets": [GITHUB_SECRET],
        "admin_tokens": TOKENS,
        "sqlite_synchronous": "NORMAL",
        "sweep_interval_s": 0.5,
        "embedded_workers": "thread",  # as tests/conftest.py: no worker process per app
    }
    values.update(overrides)
    # _env_file=None: a developer's .env must not leak into tests.
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def admin_get(client: TestClient, path: str, token: str = TOKENS[0], **params: Any) -> Any:
    r = client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    for secret in TOKENS:
        assert secret not in r.text
    return r


def post_stripe(client: TestClient, body: bytes) -> str:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), STRIPE_SECRET, timestamp=int(time.time())
    )
    headers = {
        "content-type": "application/json",
        "stripe-signature": header,
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    r = client.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == 200, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def stripe_event(client: TestClient, event_type: str = "payout.updated") -> str:
    event = {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": event_type}
    return post_stripe(client, json.dumps(event).encode())


def post_github(client: TestClient, event: str, payload: dict[str, Any]) -> str:
    body = json.dumps(payload).encode()
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-hub-signature-256": f"sha256={digest}",
        "x-github-event": event,
        "x-github-delivery": str(uuid.uuid4()),
        "user-agent": "GitHub-Hookshot/abc123",
    }
    r = client.post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 200, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def wait_settled(client: TestClient, event_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """In-process workers settle events in the background; poll the API until they have."""
    deadline = time.monotonic() + timeout
    while True:
        detail: dict[str, Any] = admin_get(client, f"/admin/events/{event_id}").json()
        if detail["status"] in ("processed", "ignored", "failed"):
            return detail
        assert time.monotonic() < deadline, f"{event_id} still {detail['status']}"
        time.sleep(0.05)


def ids_of(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def assert_utc(value: str) -> None:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value


# Authentication


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_missing_header_or_wrong_token_is_401(client, path):
    cases: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Basic {TOKENS[0]}"},
        {"Authorization": f"Bearer {TOKENS[0]}x"},
    ]
    for headers in cases:
        r = client.get(path, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        body = r.json()
        assert body["error"] == "unauthorized"
        assert body["reason"]
        assert "not-the-token" not in r.text
        assert TOKENS[0] not in r.text


def test_every_configured_token_is_accepted(client):
    for token in TOKENS:
        r = admin_get(client, "/admin/stats", token=token)
        assert r.status_code == 200


def test_without_configured_tokens_the_admin_api_refuses_all(tmp_path):
    with TestClient(create_app(make_settings(tmp_path, admin_tokens=[]))) as client:
        for path in ADMIN_PATHS:
            r = admin_get(client, path)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            assert "HUB_ADMIN_TOKENS" in r.json()["reason"]


def test_openapi_documents_the_bearer_scheme_on_admin_paths(client):
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    for path in ("/admin/events", "/admin/events/{event_id}", "/admin/stats"):
        assert spec["paths"][path]["get"]["security"]


# Listing


def test_list_filters_by_provider_type_and_status(client):
    paid = stripe_event(client, "invoice.paid")
    failed = stripe_event(client, "payout.updated")
    ping = post_github(client, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    for eid in (paid, failed, ping):
        wait_settled(client, eid)

    def listed(**params: Any) -> set[str]:
        r = admin_get(client, "/admin/events", **params)
        assert r.status_code == 200, r.text
        return set(ids_of(r.json()))

    assert listed() == {paid, failed, ping}
    assert listed(provider="stripe") == {paid, failed}
    assert listed(provider="github") == {ping}
    assert listed(type="invoice.paid") == {paid}
    assert listed(provider="github", type="invoice.paid") == set()
    assert listed(status="processed") == {ping}
    assert listed(status="ignored") == {paid, failed}
    assert listed(status="failed") == set()


def test_list_items_have_the_summary_fields_and_no_body(client):
    eid = stripe_event(client)
    wait_settled(client, eid)
    (item,) = admin_get(client, "/admin/events").json()["items"]
    assert set(item) == SUMMARY_FIELDS
    assert (item["id"], item["provider"], item["type"]) == (eid, "stripe", "payout.updated")
    assert item["delivery_id"].startswith("evt_")
    assert item["status"] == "ignored"
    assert item["runs"] == 0  # no worker routes payout.updated: stored `ignored`, never run
    assert item["last_error"] is None
    assert_utc(item["received_at"])
    assert_utc(item["updated_at"])


def test_since_and_until_split_on_received_at(client):
    before = [stripe_event(client) for _ in range(2)]
    time.sleep(0.01)
    cut = datetime.now(UTC)
    time.sleep(0.01)
    after = [stripe_event(client) for _ in range(3)]

    def listed(**params: Any) -> list[str]:
        r = admin_get(client, "/admin/events", **params)
        assert r.status_code == 200, r.text
        return ids_of(r.json())

    assert sorted(listed(since=cut.isoformat())) == sorted(after)
    assert sorted(listed(until=cut.isoformat())) == sorted(before)
    # The same instant written with another offset, or naive (taken as UTC), selects the same.
    plus_two = cut.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert sorted(listed(since=plus_two)) == sorted(after)
    naive = cut.replace(tzinfo=None).isoformat()
    assert sorted(listed(until=naive)) == sorted(before)
    assert listed(since=cut.isoformat(), until=cut.isoformat()) == []


def test_paging_returns_every_event_once_newest_first(client):
    posted = []
    for _ in range(7):
        posted.append(stripe_event(client))
        # Ids order by millisecond; events stored in the same one have no defined order.
        time.sleep(0.003)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = admin_get(client, "/admin/events", **params).json()
        pages += 1
        assert len(page["items"]) == (3 if pages < 3 else 1)
        seen.extend(ids_of(page))
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 3
    assert seen == list(reversed(posted))


def test_an_exactly_full_last_page_has_no_next_cursor(client):
    posted = [stripe_event(client) for _ in range(3)]
    page = admin_get(client, "/admin/events", limit=3).json()
    assert sorted(ids_of(page)) == sorted(posted)
    assert page["next_cursor"] is None


def test_status_filter_pages_too(client):
    ping = post_github(client, "ping", {"zen": "Design for failure.", "hook_id": 2})
    others = [stripe_event(client) for _ in range(3)]
    for eid in (ping, *others):
        wait_settled(client, eid)
    first = admin_get(client, "/admin/events", status="ignored", limit=2).json()
    second = admin_get(
        client, "/admin/events", status="ignored", limit=2, cursor=first["next_cursor"]
    ).json()
    assert sorted(ids_of(first) + ids_of(second)) == sorted(others)
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor!",
        base64.urlsafe_b64encode(b"hello").decode(),
        base64.urlsafe_b64encode(b"evt_' OR 1=1 --").decode(),
        base64.urlsafe_b64encode(b"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV").decode() + "$",
        "A" * 500,
    ],
)
def test_a_cursor_this_api_did_not_issue_is_400(client, cursor):
    r = admin_get(client, "/admin/events", cursor=cursor)
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "bad_cursor"
    assert "cursor" in body["reason"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "exploded"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_invalid_parameters_are_422_with_a_reason(client, params, field):
    r = admin_get(client, "/admin/events", **params)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_request"
    assert field in body["reason"]


def test_limit_500_is_allowed(client):
    assert admin_get(client, "/admin/events", limit=500).status_code == 200


# Detail


def test_detail_returns_the_body_exactly_as_posted(client):
    # Non-ASCII, escapes, tabs, CRLF and a trailing newline: any re-encoding would show.
    body = (
        '{"id": "evt_raw_body_1",\t"type":"charge.refunded" ,\r\n'
        '  "note": "café — 東京 🎉 \\u00e9",   "amount":  1.50 }\n'
    ).encode()
    eid = post_stripe(client, body)
    detail = admin_get(client, f"/admin/events/{eid}").json()
    assert detail["body"].encode("utf-8") == body
    assert detail["body_encoding"] == "utf-8"
    assert (detail["id"], detail["provider"], detail["type"]) == (
        eid,
        "stripe",
        "charge.refunded",
    )
    assert detail["delivery_id"] == "evt_raw_body_1"
    assert detail["headers"] == {
        "content-type": "application/json",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    assert "stripe-signature" not in {k.lower() for k in detail["headers"]}
    assert detail["status"] in STATUSES
    assert_utc(detail["received_at"])


def test_github_ping_records_an_attempt(client):
    eid = post_github(client, "ping", {"zen": "Speak like a human.", "hook_id": 3})
    detail = wait_settled(client, eid)
    assert detail["status"] == "processed"
    assert detail["type"] == "ping"
    assert detail["runs"] == 1
    assert detail["headers"]["x-github-event"] == "ping"
    assert "x-hub-signature-256" not in detail["headers"]
    (attempt,) = detail["attempts"]
    assert set(attempt) >= {"workflow", "started_at", "finished_at", "outcome", "error"}
    assert attempt["workflow"].endswith("acknowledge_ping")
    assert attempt["outcome"] == "ok"
    assert attempt["error"] is None
    assert_utc(attempt["started_at"])
    assert_utc(attempt["finished_at"])
    assert attempt["started_at"] <= attempt["finished_at"]


def test_a_body_that_is_not_utf8_comes_back_base64(client, settings):
    # No provider accepts such a body today, so store it directly, as a future one might.
    raw = b"\xff\xfe binary \x00\x80 payload"
    engine = make_engine(settings.database_url)
    (stored,) = EventStore(engine).insert([NewEvent("stripe", "evt_bin", "x.y", {}, raw)])
    engine.dispose()
    detail = admin_get(client, f"/admin/events/{stored.event_id}").json()
    assert detail["body_encoding"] == "base64"
    assert base64.b64decode(detail["body"]) == raw


def test_an_unknown_event_is_404(client):
    r = admin_get(client, "/admin/events/evt_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"
    assert r.json()["reason"]


# Stats


def test_stats_count_by_status_and_provider(client):
    assert admin_get(client, "/admin/stats").json() == {
        "by_status": {s: 0 for s in STATUSES},
        "by_provider": {},
    }
    settled = [stripe_event(client) for _ in range(3)]
    settled += [post_github(client, "ping", {"zen": "Avoid administrative distraction."})]
    settled += [post_github(client, "issues", {"action": "opened", "issue": {"number": 1}})]
    for eid in settled:
        wait_settled(client, eid)
    stats = admin_get(client, "/admin/stats").json()
    assert stats["by_status"] == {s: 0 for s in STATUSES} | {"ignored": 4, "processed": 1}
    assert stats["by_provider"] == {"stripe": 3, "github": 2}
