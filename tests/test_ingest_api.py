"""The webhook endpoints as a sender sees them, against the real app on SQLite."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.events.store import event_bodies, events, with_bodies
from hub.runtime.db import make_engine
from tests.conftest import make_settings
from tests.signing import (
    GITHUB_SECRET,
    SLACK_SECRET,
    STRIPE_SECRET,
    github_request,
    slack_request,
    stripe_event,
    stripe_request,
)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def stored_rows(settings: Settings) -> list[Any]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = list(conn.execute(select(events, event_bodies.c.body).select_from(with_bodies)))
    engine.dispose()
    return rows


def wait_status(settings: Settings, event_id: str, want: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = next((r.status for r in stored_rows(settings) if r.id == event_id), "")
        if status == want:
            break
        time.sleep(0.05)
    return status


def test_stripe_delivery_is_stored_byte_for_byte_and_acknowledged(client, settings):
    # Odd spacing and non-ASCII: the stored body must be the bytes sent, not a re-encoding.
    body = b'{"id": "evt_bytes_1",  "type": "customer.updated", "note": "caf\xc3\xa9 \\u00e9"}\n'
    body, headers = stripe_request(body)
    r = client.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == 200
    answer = r.json()
    assert answer["duplicate"] is False
    (row,) = stored_rows(settings)
    assert row.id == answer["event_id"]
    assert bytes(row.body) == body
    assert (row.provider, row.delivery_id, row.type) == (
        "stripe",
        "evt_bytes_1",
        "customer.updated",
    )
    assert "stripe-signature" not in row.headers
    assert wait_status(settings, row.id, "ignored") == "ignored"


def test_a_retry_signed_afresh_is_a_duplicate_with_the_same_id(client, settings):
    event = stripe_event()
    first = client.post("/webhooks/stripe", **_kw(stripe_request(event)))
    # Stripe signs every retry anew (new t): dedup must be on event.id, not the signature.
    retry = client.post(
        "/webhooks/stripe", **_kw(stripe_request(event, timestamp=int(time.time()) - 5))
    )
    assert first.status_code == retry.status_code == 200
    assert retry.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    assert len(stored_rows(settings)) == 1


def test_concurrent_copies_of_one_delivery_make_one_row(client, settings):
    request = stripe_request(stripe_event())
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda _: client.post("/webhooks/stripe", **_kw(request)), range(32))
        )
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["event_id"] for a in answers}) == 1
    assert sum(not a.json()["duplicate"] for a in answers) == 1
    assert len(stored_rows(settings)) == 1


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("wrong_secret", 401),
        ("stale", 401),
        ("missing_signature", 401),
        ("tampered", 401),
        ("not_json", 400),
        ("wrong_content_type", 415),
    ],
)
def test_bad_stripe_requests_get_a_clear_error_and_change_nothing(client, settings, case, status):
    body, headers = _bad_stripe(case)
    r = client.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == status
    err = r.json()
    assert err["error"] and err["reason"]
    assert STRIPE_SECRET not in r.text
    assert stored_rows(settings) == []


def _bad_stripe(case: str) -> tuple[bytes, dict[str, str]]:
    event = stripe_event()
    if case == "wrong_secret":
        return stripe_request(event, secret="whsec_not_ours")
    if case == "stale":
        return stripe_request(event, timestamp=int(time.time()) - 301)
    if case == "missing_signature":
        body, headers = stripe_request(event)
        del headers["stripe-signature"]
        return body, headers
    if case == "tampered":
        body, headers = stripe_request(event)
        return body.replace(b"customer", b"cust0mer"), headers
    if case == "not_json":
        return stripe_request(b"id=evt_1&type=x")
    body, headers = stripe_request(event)
    return body, {**headers, "content-type": "text/plain"}


def test_oversized_body_is_refused_before_verification(tmp_path, sqlite_url):
    settings = make_settings(sqlite_url, max_body_bytes=1024)
    with TestClient(create_app(settings)) as client:
        big = stripe_event(padding="x" * 2048)
        r = client.post("/webhooks/stripe", **_kw(stripe_request(big)))
        assert r.status_code == 413
        assert "1024" in r.json()["reason"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while reading
            yield b"{" + b" " * 800
            yield b" " * 800 + b"}"

        _, headers = stripe_request(b"{}")
        r = client.post("/webhooks/stripe", content=chunks(), headers=headers)
        assert r.status_code == 413
    assert stored_rows(settings) == []


def test_unknown_and_unconfigured_providers_are_not_mounted(sqlite_url):
    settings = make_settings(sqlite_url, slack_signing_secrets=[])
    with TestClient(create_app(settings)) as client:
        body, headers = slack_request(b'{"type": "url_verification", "challenge": "c"}')
        r = client.post("/webhooks/slack/events", content=body, headers=headers)
        assert r.status_code == 404
        assert "secret" in r.json()["reason"]
        assert client.post("/webhooks/paypal", content=b"{}").status_code == 404
        assert client.get("/webhooks/stripe").status_code == 405


def test_unsigned_request_is_never_accepted_even_with_blank_secret_entries(sqlite_url):
    settings = make_settings(sqlite_url, stripe_webhook_secrets=[""])
    with TestClient(create_app(settings)) as client:
        body, headers = stripe_request(stripe_event(), secret="")
        assert client.post("/webhooks/stripe", content=body, headers=headers).status_code == 404


def test_rotation_accepts_either_secret(sqlite_url):
    settings = make_settings(sqlite_url, stripe_webhook_secrets=["whsec_old", STRIPE_SECRET])
    with TestClient(create_app(settings)) as client:
        for secret in ("whsec_old", STRIPE_SECRET):
            r = client.post(
                "/webhooks/stripe", **_kw(stripe_request(stripe_event(), secret=secret))
            )
            assert r.status_code == 200


def test_database_down_answers_503_so_the_sender_retries():
    # Port 1 on loopback refuses connections: the store is down from the first request.
    settings = make_settings("postgresql+psycopg://postgres@127.0.0.1:1/none")
    with TestClient(create_app(settings)) as client:
        r = client.post("/webhooks/stripe", **_kw(stripe_request(stripe_event())))
        assert r.status_code == 503
        assert r.headers["retry-after"]
        assert r.json()["error"] == "unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unreachable")
        assert client.get("/healthz").status_code == 200


def test_slack_url_verification_is_answered_and_not_stored(client, settings):
    payload = json.dumps({"type": "url_verification", "challenge": "3eZbrw1a", "token": "x"})
    r = client.post("/webhooks/slack/events", **_kw(slack_request(payload.encode())))
    assert r.status_code == 200
    assert r.json() == {"challenge": "3eZbrw1a"}
    assert stored_rows(settings) == []


def test_slack_retry_is_recognised_as_a_repeat(client, settings):
    payload = json.dumps(
        {"type": "event_callback", "event_id": "Ev123", "event": {"type": "app_mention"}}
    ).encode()
    first = client.post("/webhooks/slack/events", **_kw(slack_request(payload)))
    body, headers = slack_request(payload, timestamp=int(time.time()) + 1)
    headers |= {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    retry = client.post("/webhooks/slack/events", content=body, headers=headers)
    assert retry.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    (row,) = stored_rows(settings)
    assert row.type == "app_mention"


def test_slack_command_and_interaction_are_stored(client, settings):
    command = (
        b"command=%2Fincident&text=list&user_id=U1&response_url=https%3A%2F%2Fhooks.slack.com%2Fx"
    )
    r = client.post(
        "/webhooks/slack/commands",
        **_kw(slack_request(command, "application/x-www-form-urlencoded")),
    )
    assert r.status_code == 200
    # Slack shows the immediate answer to the person who typed the command.
    assert r.json()["text"] == "Working on `/incident list`…"
    assert r.json()["response_type"] == "ephemeral" and r.json()["duplicate"] is False
    action = b"payload=" + json.dumps({"type": "block_actions", "user": {"id": "U1"}}).encode()
    r = client.post(
        "/webhooks/slack/interactions",
        **_kw(slack_request(action, "application/x-www-form-urlencoded")),
    )
    assert r.status_code == 200
    assert sorted(row.type for row in stored_rows(settings)) == ["/incident", "block_actions"]
    assert SLACK_SECRET not in r.text


def test_github_ping_runs_its_workflow_and_other_events_are_ignored(client, settings):
    ping = client.post(
        "/webhooks/github", **_kw(github_request("ping", {"zen": "x", "hook_id": 1}))
    )
    push = client.post(
        "/webhooks/github", **_kw(github_request("push", {"ref": "refs/heads/main"}))
    )
    assert wait_status(settings, ping.json()["event_id"], "processed") == "processed"
    assert wait_status(settings, push.json()["event_id"], "ignored") == "ignored"
    detail = client.get(
        f"/admin/events/{ping.json()['event_id']}",
        headers={"authorization": "Bearer admin-token-for-tests"},
    )
    if detail.status_code == 200:  # the admin API may land separately; the row is checked above
        assert [a["outcome"] for a in detail.json()["attempts"]] == ["ok"]
    assert GITHUB_SECRET not in ping.text


def _kw(request: tuple[bytes, dict[str, str]]) -> dict[str, Any]:
    body, headers = request
    return {"content": body, "headers": headers}


def test_counts_stay_consistent(client, settings):
    for _ in range(20):
        client.post("/webhooks/stripe", **_kw(stripe_request(stripe_event())))
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(events)).scalar_one()
        distinct = conn.execute(select(func.count(events.c.delivery_id.distinct()))).scalar_one()
    engine.dispose()
    assert total == distinct == 20
