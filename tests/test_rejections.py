"""Refused webhook requests are visible: one log line each (held to a few per kind, then a
summary), kept for `GET /admin/rejections` and `hub events rejected`; a bad signature is
told why (401) until the client floods; one word for the answer's `error`, the metric's
`outcome` and the log line; messages that name the real mistake."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.cli import rejections as rejections_cli
from hub.cli.main import main
from hub.config import Settings
from hub.events.rejections import RejectionFilter, RejectionStore, list_rejections
from hub.ingest import meter as m
from hub.ingest.rejections import RejectionLog
from hub.runtime.db import make_engine
from hub.runtime.logs import handler_for
from hub.runtime.migrate import upgrade
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.signing import (
    GITHUB_SECRET,
    STRIPE_SECRET,
    github_request,
    stripe_event,
    stripe_request,
)
from tests.test_metrics import scrape

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
LOGGER = "hub.ingest.rejections"


class Lines:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]


@pytest.fixture
def log() -> Iterator[Lines]:
    """The refusal log as JSON lines, through the hub's own handler and formatter."""
    stream = io.StringIO()
    settings = make_settings("sqlite://", log_format="json")
    handler = handler_for(settings, stream)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    try:
        yield Lines(stream)
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def bad_stripe() -> tuple[bytes, dict[str, str]]:
    return stripe_request(stripe_event(), secret="whsec_not_the_configured_one")


def wait_rows(settings: Settings, n: int, timeout: float = 5.0) -> list[Any]:
    """The stored rejections once at least `n` are written (the writer runs once a second)."""
    engine = make_engine(settings.database_url)
    deadline = time.monotonic() + timeout
    rows = list_rejections(engine, RejectionFilter())
    while len(rows) < n and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = list_rejections(engine, RejectionFilter())
    engine.dispose()
    return rows


def test_a_bad_stripe_signature_is_one_line_naming_provider_endpoint_reason_and_client(client, log):
    body, headers = bad_stripe()
    r = client.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    (line,) = log.all()
    assert line["level"] == "WARNING" and line["logger"] == LOGGER
    assert line["message"] == (
        "stripe webhook refused at /webhooks/stripe: 401 unauthorized: no v1 signature "
        "matches any configured secret (check HUB_STRIPE_WEBHOOK_SECRETS against the "
        "endpoint's signing secret)"
    )
    assert (line["provider"], line["endpoint"], line["error"], line["client"]) == (
        "stripe",
        "stripe",
        "unauthorized",
        "testclient",
    )
    text = json.dumps(line)
    signature = headers["stripe-signature"]
    for secret in (STRIPE_SECRET, "whsec_not_the_configured_one", signature, "v1="):
        assert secret not in text
    assert body.decode()[:20] not in text


def test_a_flood_of_1000_bad_signatures_is_ten_lines(client, log):
    body, headers = bad_stripe()
    started = time.monotonic()
    for _ in range(1000):
        assert client.post("/webhooks/stripe", content=body, headers=headers).status_code == 401
    elapsed = time.monotonic() - started
    written = log.all()
    assert {line["error"] for line in written} == {"unauthorized"}
    if elapsed < 10:  # one window: ten lines, and its summary not due yet
        assert len(written) == 10
    else:  # a slow machine: each 10 s window writes ten lines and then one summary
        windows = int(elapsed // 10) + 1
        assert 10 <= len(written) <= 11 * windows, (len(written), elapsed)


def test_held_back_lines_become_one_summary_line_and_one_row(settings, log):
    engine = make_engine(settings.database_url)
    now = [1000.0]
    store = RejectionStore(engine)
    rejections = RejectionLog(store, clock=lambda: now[0])
    reason = "no v1 signature matches any configured secret"
    for i in range(1000):
        rejections.refused(
            "stripe", "stripe", 401, m.UNAUTHORIZED, reason=reason, client=f"10.0.0.{i % 7}"
        )
    assert len(log.all()) == 10
    now[0] += 10.0
    rejections.tick()  # the writer's once-a-second round: summaries, then the database
    *_, summary = log.all()
    assert summary["message"] == (
        "stripe webhook refused at /webhooks/stripe: … and 990 more like it in the last 10 s "
        "(401 unauthorized; the last from 10.0.0.5)"
    )
    assert (summary["provider"], summary["endpoint"], summary["error"]) == (
        "stripe",
        "stripe",
        "unauthorized",
    )
    rows = list_rejections(engine, RejectionFilter())
    assert len(rows) == 11
    assert rows[0].count == 990 and rows[0].reason.startswith("… and 990 more like it")
    assert {r.count for r in rows[1:]} == {1}
    # A new window: the next refusal is written again.
    rejections.refused("stripe", "stripe", 401, m.UNAUTHORIZED, reason=reason, client="10.0.0.9")
    assert len(log.all()) == 12
    engine.dispose()


def test_the_table_keeps_only_the_newest_rows(settings):
    engine = make_engine(settings.database_url)
    store = RejectionStore(engine, keep=50, prune_batch=10)
    for i in range(200):
        store.add((time.time(), "github", "github", 401, "unauthorized", f"r{i}", "1.2.3.4", 1))
        if i % 20 == 19:
            store.flush()
    rows = list_rejections(engine, RejectionFilter(), limit=500)
    assert 50 <= len(rows) <= 60
    assert rows[0].reason == "r199"
    engine.dispose()


def test_the_admin_list_shows_rejections_newest_first_with_filters(client, settings):
    client.post("/webhooks/stripe", **_kw(bad_stripe()))
    body, headers = github_request("ping", {"zen": "x"}, secret="wrong")
    client.post("/webhooks/github", content=body, headers=headers)
    client.post("/webhooks/strpe", content=b"{}")
    client.get("/webhooks/github")
    wait_rows(settings, 4)
    r = client.get("/admin/rejections", headers=ADMIN)
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(i["provider"], i["status"], i["error"]) for i in items] == [
        ("github", 405, "method_not_allowed"),
        ("unknown", 404, "not_found"),
        ("github", 401, "unauthorized"),
        ("stripe", 401, "unauthorized"),
    ]
    first = items[-1]
    assert set(first) >= {"at", "provider", "endpoint", "error", "reason", "client", "count"}
    assert first["endpoint"] == "stripe" and first["client"] == "testclient"
    assert first["reason"].startswith("no v1 signature matches any configured secret")
    assert "/webhooks/strpe" in items[1]["reason"]
    only = client.get("/admin/rejections?provider=stripe", headers=ADMIN).json()["items"]
    assert [i["id"] for i in only] == [first["id"]]
    unauthorized = client.get("/admin/rejections?error=unauthorized", headers=ADMIN).json()
    assert [i["provider"] for i in unauthorized["items"]] == ["github", "stripe"]
    later = client.get(
        "/admin/rejections", params={"since": "2999-01-01T00:00:00Z"}, headers=ADMIN
    ).json()
    assert later == {"items": [], "next_cursor": None}
    page = client.get("/admin/rejections?limit=3", headers=ADMIN).json()
    assert len(page["items"]) == 3 and page["next_cursor"]
    rest = client.get(
        "/admin/rejections", params={"limit": 3, "cursor": page["next_cursor"]}, headers=ADMIN
    ).json()
    assert [i["id"] for i in rest["items"]] == [first["id"]] and rest["next_cursor"] is None
    assert client.get("/admin/rejections").status_code == 401


def test_the_cli_lists_rejections(client, settings, capsys, monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_DATABASE_URL", settings.database_url)
    client.post("/webhooks/stripe", **_kw(bad_stripe()))
    wait_rows(settings, 1)
    code = _run(["events", "rejected"])
    out = capsys.readouterr().out
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:7] == [
        "AT",
        "(UTC)",
        "PROVIDER",
        "ENDPOINT",
        "STATUS",
        "ERROR",
        "CLIENT",
    ]
    assert "stripe" in row and "401" in row and "unauthorized" in row and "testclient" in row
    assert "no v1 signature matches any configured secret" in row
    assert _run(["events", "rejected", "--provider", "github"]) == 0
    assert "stripe" not in capsys.readouterr().out
    assert _run(["events", "rejected", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert (item["provider"], item["error"], item["status"]) == ("stripe", "unauthorized", 401)


def test_a_rate_limited_bad_signature_is_told_why_until_the_client_floods(tmp_path):
    url = f"sqlite:///{tmp_path}/hub.db"
    upgrade(url)
    settings = make_settings(url, unverified_rate_limit="2/minute")
    body, headers = bad_stripe()
    with TestClient(create_app(settings)) as client:
        answers = [
            client.post("/webhooks/stripe", content=body, headers=headers) for _ in range(21)
        ]
    # 2/minute is the limit; 10 x 2 = 20 is where the hub sheds the client to protect itself.
    assert [a.status_code for a in answers[:20]] == [401] * 20
    assert answers[19].json() == {
        "error": "unauthorized",
        "reason": "no v1 signature matches any configured secret (check "
        "HUB_STRIPE_WEBHOOK_SECRETS against the endpoint's signing secret)",
    }
    shed = answers[20]
    assert shed.status_code == 429
    assert shed.json()["error"] == "rate_limited"
    assert "unverified_flood (20 per 1 minute) exceeded" in shed.json()["reason"]
    assert int(shed.headers["retry-after"]) >= 1


def test_a_timestamp_in_milliseconds_is_named_as_such(client):
    now_ms = int(time.time() * 1000)
    r = client.post("/webhooks/stripe", **_kw(stripe_request(stripe_event(), timestamp=now_ms)))
    assert r.status_code == 401
    assert r.json() == {
        "error": "unauthorized",
        "reason": "timestamp looks like milliseconds; Stripe signs seconds",
    }


def test_a_body_that_is_not_utf8_is_named_as_such(client):
    body = b'{"zen": "caf\xe9"}'  # Latin-1, signed as sent
    _, headers = github_request("ping", {})
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers["x-hub-signature-256"] = f"sha256={digest}"
    r = client.post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": "body is not valid UTF-8"}
    not_json = client.post("/webhooks/stripe", **_kw(stripe_request(b"id=evt_1&type=x")))
    assert not_json.json() == {"error": "bad_request", "reason": "body is not valid JSON"}


def test_each_refusals_error_is_its_metric_outcome_and_log_error(tmp_path, log):
    url = f"sqlite:///{tmp_path}/hub.db"
    upgrade(url)
    settings = make_settings(url, unverified_rate_limit="1/minute", max_body_bytes=2048)
    with TestClient(create_app(settings)) as client:
        answers = {
            401: client.post("/webhooks/stripe", **_kw(bad_stripe())),
            400: client.post("/webhooks/stripe", **_kw(stripe_request(b"[1]"))),
            413: client.post(
                "/webhooks/stripe",
                content=b"x" * 4096,
                headers={"content-type": "application/json"},
            ),
            415: client.post(
                "/webhooks/stripe", content=b"{}", headers={"content-type": "text/plain"}
            ),
            405: client.get("/webhooks/stripe"),
            404: client.post("/webhooks/nowhere", content=b"{}"),
        }
        for _ in range(9):
            client.post("/webhooks/stripe", **_kw(bad_stripe()))
        answers[429] = client.post("/webhooks/stripe", **_kw(bad_stripe()))
        samples = scrape(client)
    for status, answer in answers.items():
        assert answer.status_code == status, (status, answer.text)
        error = answer.json()["error"]
        assert error in m.OUTCOMES
        labels = {"outcome": error}
        labels |= (
            {"provider": "unknown", "endpoint": "unknown"}
            if status == 404
            else {
                "provider": "stripe",
                "endpoint": "stripe",
            }
        )
        key = ("hub_webhooks_received_total", frozenset(labels.items()))
        assert samples.get(key, 0) >= 1, (status, error)
        assert any(line["error"] == error for line in log.all()), (status, error)
    assert answers[400].json()["error"] == "bad_request"  # not `malformed`
    assert set(rejections_cli.ERRORS) <= set(m.OUTCOMES)


def _kw(request: tuple[bytes, dict[str, str]]) -> dict[str, Any]:
    body, headers = request
    return {"content": body, "headers": headers}


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
