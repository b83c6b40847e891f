"""`GET /metrics` as Prometheus reads it: ingress counters and latency, gauges that match the
database, worker counters from another process through Redis, and outbound calls and 429s
against the fake Slack and GitHub servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.events.counts import EVENTS_CURRENT, EVENTS_HISTORY, StatusCounts
from hub.events.models import Status
from hub.events.store import EventStore, NewEvent, events
from hub.incidents.changes import effects, incidents
from hub.observability.worker_metrics import RedisCounters, WorkerMetrics, build_counters
from hub.runtime.db import make_engine
from tests.conftest import make_settings
from tests.fakes.github import GitHubServer
from tests.handlers import payloads as p
from tests.signing import github_request, stripe_event, stripe_request
from tests.test_incident_flow import wait_for

REPO = "acme/ops"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of a scrape, parsed by Prometheus's own parser (which rejects bad text)."""
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` that has these labels (and any others)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def post(client: TestClient, path: str, request: tuple[bytes, dict[str, str]]) -> int:
    body, headers = request
    return client.post(path, content=body, headers=headers).status_code


def db_counts(settings: Settings, table: Any) -> dict[str, int]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.status, func.count()).group_by(table.c.status))
        counts = {status: int(n) for status, n in rows}
    engine.dispose()
    return counts


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(sqlite_url, max_body_bytes=4096))) as c:
        yield c


def test_the_ingress_counts_every_answer_and_times_it(client):
    signed = stripe_request(stripe_event())
    assert post(client, "/webhooks/stripe", signed) == 200
    assert post(client, "/webhooks/stripe", signed) == 200  # the same delivery again
    body, headers = stripe_request(stripe_event(), secret="whsec_someone_else")
    assert post(client, "/webhooks/stripe", (body, headers)) == 401
    assert post(client, "/webhooks/stripe", (body, {**headers, "content-type": "text/xml"})) == 415
    assert post(client, "/webhooks/stripe", stripe_request(b"x" * 5000)) == 413
    assert post(client, "/webhooks/stripe", stripe_request(b"not json")) == 400
    assert post(client, "/webhooks/github", github_request("ping", {"zen": "ok"})) == 200
    assert post(client, "/webhooks/gitlab", (b"{}", {})) == 404
    assert client.get("/webhooks/stripe").status_code == 405

    samples = scrape(client)
    received = "hub_webhooks_received_total"
    stripe = {"provider": "stripe", "endpoint": "stripe"}
    for outcome in ("stored", "duplicate", "unauthorized", "unsupported_media_type"):
        assert value(samples, received, **stripe, outcome=outcome) == 1, outcome
    for outcome in ("too_large", "bad_request", "method_not_allowed"):
        assert value(samples, received, **stripe, outcome=outcome) == 1, outcome
    assert value(samples, received, **stripe, outcome="unavailable") == 0
    github = {"provider": "github", "endpoint": "github"}
    assert value(samples, received, **github, outcome="stored") == 1
    unrouted = {"provider": "unknown", "endpoint": "unknown"}
    assert value(samples, received, **unrouted, outcome="not_found") == 1

    duration = "hub_webhook_duration_seconds"
    assert value(samples, f"{duration}_count", **stripe) == 7
    assert value(samples, f"{duration}_bucket", **stripe, le="+Inf") == 7
    assert value(samples, f"{duration}_sum", **stripe) > 0
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == f"{duration}_bucket" and stripe.items() <= labels
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)  # cumulative


def test_the_embedded_database_shows_its_wal(client):
    assert post(client, "/webhooks/stripe", stripe_request(stripe_event())) == 200
    samples = scrape(client)
    # The WAL holds the event until a checkpoint copies it back; the file keeps its size.
    assert value(samples, "hub_sqlite_wal_bytes") > 4096


def test_status_gauges_and_embedded_worker_counters_match_the_database(sqlite_url):
    # 0: the settled history counted at every scrape too, so every gauge is exact.
    settings = make_settings(sqlite_url, metrics_history_max_age_s=0)
    with TestClient(create_app(settings)) as client:
        # CI red, then (once its incident is open) green: one incident opened and resolved.
        red = github_request("workflow_run", p.workflow_run("failure", "main", run_number=42))
        assert post(client, "/webhooks/github", red) == 200
        wait_for(lambda: db_counts(settings, incidents).get("open"), what="CI broken on main")
        green = github_request("workflow_run", p.workflow_run("success", "main", run_number=43))
        assert post(client, "/webhooks/github", green) == 200
        payout = p.stripe_event("payout.failed", p.payout(), event_id=f"evt_{uuid.uuid4().hex}")
        assert post(client, "/webhooks/stripe", stripe_request(payout)) == 200
        assert post(client, "/webhooks/stripe", stripe_request(stripe_event())) == 200  # ignored

        def settled() -> Samples | None:
            samples = scrape(client)
            done = value(samples, "hub_events_active") == 0 and not _open_effects(settings)
            return samples if done and value(samples, "hub_incidents", status="resolved") else None

        samples = wait_for(settled, what="every event settled and one incident resolved")

    by_status = db_counts(settings, events)
    assert sum(by_status.values()) == 4
    for status in ("received", "queued", "processing", "processed", "ignored", "failed"):
        assert value(samples, "hub_events", status=status) == by_status.get(status, 0), status
    by_incident = db_counts(settings, incidents)
    assert by_incident == {"open": 1, "resolved": 1}
    for status in ("open", "acknowledged", "resolved"):
        assert value(samples, "hub_incidents", status=status) == by_incident.get(status, 0)
    # Embedded: the workers' counters are this process's, read directly.
    assert value(samples, "hub_events_settled_total", outcome="processed") == 3
    assert total(samples, "hub_workflow_attempts_total") == 3
    assert total(samples, "hub_workflow_failures_total") == 0
    assert value(samples, "hub_metrics_source_up", source="database") == 1


def _open_effects(settings: Settings) -> bool:
    counts = db_counts(settings, effects)
    return bool(counts.get("pending") or counts.get("attempting"))


@pytest.mark.services
def test_worker_counters_from_other_processes_reach_the_api_through_redis(
    sqlite_url, redis_url, redis_namespace
):
    settings = make_settings(sqlite_url, redis_url=redis_url, redis_namespace=redis_namespace)
    # Two `hub worker` processes' counters: each its own object, its own Redis connection.
    first, second = build_counters(settings), build_counters(settings)
    assert isinstance(first, RedisCounters) and isinstance(second, RedisCounters)
    for counters in (first, second):
        counters.start()
        metrics = WorkerMetrics(counters)
        metrics.attempt("handlers.billing.payout_failed", ok=True)
        metrics.attempt("handlers.billing.payout_failed", ok=False)
        metrics.settled("processed", 5)
        metrics.call("slack", "chat.postMessage")
        metrics.rate_limited("slack", "chat.postMessage")
    first.stop()  # the last flush, as a worker process does when it stops
    second.flush()

    with TestClient(create_app(settings)) as client:
        samples = scrape(client)
    workflow = {"workflow": "handlers.billing.payout_failed"}
    assert value(samples, "hub_workflow_attempts_total", **workflow) == 4
    assert value(samples, "hub_workflow_failures_total", **workflow) == 2
    assert value(samples, "hub_events_settled_total", outcome="processed") == 10
    slack = {"target": "slack", "method": "chat.postMessage"}
    assert value(samples, "hub_outbound_calls_total", **slack) == 2
    assert value(samples, "hub_outbound_rate_limited_total", **slack) == 2
    assert value(samples, "hub_metrics_source_up", source="worker_counters") == 1
    second.stop()


def test_redis_unreachable_keeps_the_counts_and_the_scrape_still_answers(sqlite_url):
    nowhere = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once
    settings = make_settings(sqlite_url, redis_url=nowhere)
    counters = build_counters(settings)
    assert isinstance(counters, RedisCounters)
    WorkerMetrics(counters).settled("processed", 3)
    with pytest.raises(redis.ConnectionError):
        counters.flush()
    assert counters._pending.totals() == {"settled\tprocessed": 3}  # kept for the next flush

    samples = scrape(TestClient(create_app(settings)))  # no lifespan: nothing else connects
    assert value(samples, "hub_metrics_source_up", source="worker_counters") == 0
    assert value(samples, "hub_metrics_source_up", source="database") == 1
    assert value(samples, "hub_events", status="processed") == 0


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer(repos=(REPO,)) as server:
        yield server


def test_outbound_calls_and_a_slack_429_are_counted_by_target_and_method(sqlite_url, slack, github):
    settings = make_settings(
        sqlite_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        github_token=github.token,
        github_api_url=github.api_url,
        github_incident_repo=REPO,
    )
    slack.rate_limit_next("chat.postMessage", retry_after_s=1)
    with TestClient(create_app(settings)) as client:
        payout = p.stripe_event("payout.failed", p.payout(), event_id=f"evt_{uuid.uuid4().hex}")
        assert post(client, "/webhooks/stripe", stripe_request(payout)) == 200

        def delivered() -> Samples | None:
            samples = scrape(client)
            posted = value(samples, "hub_effects_total", kind="slack.post", outcome="done")
            opened = value(samples, "hub_effects_total", kind="github.issue", outcome="done")
            return samples if posted and opened and not _open_effects(settings) else None

        samples = wait_for(delivered, what="the post after its 429, and the issue")

    assert slack.rate_limited >= 1
    calls, limited = "hub_outbound_calls_total", "hub_outbound_rate_limited_total"
    post_message = {"target": "slack", "method": "chat.postMessage"}
    assert value(samples, limited, **post_message) == slack.rate_limited
    assert total(samples, limited, target="slack") == slack.rate_limited
    assert value(samples, calls, **post_message) == slack.posts + slack.rate_limited
    for method in ("chat.postMessage", "chat.update"):
        sent = sum(1 for c in slack.calls if c.path == f"/api/{method}")
        assert value(samples, calls, target="slack", method=method) == sent, method
    assert value(samples, calls, target="github", method="issues.create") == 1
    assert total(samples, limited, target="github") == 0
    rate_limited = value(samples, "hub_effects_total", kind="slack.post", outcome="rate_limited")
    assert rate_limited == slack.rate_limited


def test_settled_history_is_counted_once_per_max_age_and_the_rest_at_every_read(sqlite_url):
    """What a scrape reads: received/queued/processing/failed exact every time, processed and
    ignored (a walk over every stored event) at most once per max age."""
    engine = make_engine(sqlite_url)
    store = EventStore(engine)
    now = [0.0]
    counts = StatusCounts(
        engine, events.c.status, EVENTS_CURRENT, EVENTS_HISTORY,
        history_max_age_s=60, clock=lambda: now[0],
    )  # fmt: skip

    def stored(n: int, status: Status) -> list[str]:
        batch = [NewEvent("github", str(uuid.uuid4()), "ping", {}, b"{}") for _ in range(n)]
        return [s.event_id for s in store.insert(batch, status)]

    stored(2, Status.IGNORED)
    queued = stored(3, Status.QUEUED)
    assert counts.read() == {
        "received": 0, "queued": 3, "processing": 0, "failed": 0, "processed": 0, "ignored": 2,
    }  # fmt: skip

    store.claim(queued)
    store.settle(queued[:2], Status.PROCESSED)
    store.settle(queued[2:], Status.FAILED)
    stored(4, Status.IGNORED)
    now[0] = 59.0
    assert counts.read() == {
        "received": 0, "queued": 0, "processing": 0, "failed": 1, "processed": 0, "ignored": 2,
    }  # fmt: skip
    now[0] = 60.0
    assert counts.read() == {
        "received": 0, "queued": 0, "processing": 0, "failed": 1, "processed": 2, "ignored": 6,
    }  # fmt: skip
    engine.dispose()
