"""Production mode against real PostgreSQL and Redis: what a platform team bets on.

Required under CI=true; skipped with a reason on a machine without the services."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.events.store import events
from hub.runtime.db import make_engine
from tests.proxy import Proxy, in_front_of
from tests.signing import github_request, stripe_event, stripe_request

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parent.parent


def counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        stmt = select(events.c.status, func.count()).group_by(events.c.status)
        result = {status: n for status, n in conn.execute(stmt)}
    engine.dispose()
    return result


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def post(client: TestClient, request: tuple[bytes, dict[str, str]]) -> Any:
    body, headers = request
    return client.post("/webhooks/" + _path(headers), content=body, headers=headers)


def _path(headers: dict[str, str]) -> str:
    return "github" if "x-github-event" in headers else "stripe"


def test_concurrent_duplicates_from_two_api_processes_make_one_row(prod_settings):
    # Two apps = two engines and two committers, as two `hub serve` processes would have.
    request = stripe_request(stripe_event())
    with (
        TestClient(create_app(prod_settings)) as a,
        TestClient(create_app(prod_settings)) as b,
        ThreadPoolExecutor(16) as pool,
    ):
        answers = list(pool.map(lambda i: post((a, b)[i % 2], request), range(40)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["event_id"] for r in answers}) == 1
    assert sum(not r.json()["duplicate"] for r in answers) == 1
    assert sum(counts(prod_settings).values()) == 1


def test_events_flow_through_redis_to_a_hub_worker(prod_settings, hub_worker):
    hub_worker()
    with TestClient(create_app(prod_settings)) as client:
        ids = [
            post(client, github_request("ping", {"zen": "z", "hook_id": 1})).json()
            for _ in range(20)
        ]
        ids += [post(client, stripe_request(stripe_event())).json() for _ in range(20)]
    assert all(not i["duplicate"] for i in ids)
    wait_for(
        lambda: counts(prod_settings) == {"processed": 20, "ignored": 20}, 30, "40 settled events"
    )


def statuses(settings: Settings) -> dict[str, str]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        result = {i: s for i, s in conn.execute(select(events.c.id, events.c.status))}
    engine.dispose()
    return result


def test_a_worker_killed_mid_event_loses_nothing(prod_settings, hub_worker):
    """SIGKILL a whole `hub worker`, supervisor included, after it claimed events and ran
    their workflows but before it recorded the outcome; a new worker finishes them via the
    lease, well inside Dramatiq's own heartbeat recovery. Messages it had fetched but not yet
    claimed are under no lease: Redis returns them once its heartbeat is stale."""
    # A heartbeat timeout well past the lease, so that the lease is what the bound measures.
    prod_settings = prod_settings.model_copy(update={"broker_heartbeat_timeout_ms": 20_000})
    with TestClient(create_app(prod_settings)) as client:
        for _ in range(30):
            post(client, github_request("ping", {"zen": "z", "hook_id": 1}))
    lock = psycopg.connect(prod_settings.database_url.replace("+psycopg", ""), autocommit=False)
    # Recording attempts waits on this lock: the worker is caught between work and commit.
    lock.execute("LOCK TABLE attempts IN EXCLUSIVE MODE")
    first = hub_worker(prod_settings)
    wait_for(lambda: counts(prod_settings).get("processing", 0) > 0, 30, "a claimed batch")
    time.sleep(0.3)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    lock.rollback()
    lock.close()
    held = {i for i, s in statuses(prod_settings).items() if s == "processing"}
    assert held
    hub_worker(prod_settings)

    def done(ids: set[str]) -> bool:
        now = statuses(prod_settings)
        return all(now[i] == "processed" for i in ids)

    took = wait_for(lambda: done(held), 45, f"the {len(held)} held events processed")
    heartbeat = prod_settings.broker_heartbeat_timeout_ms / 1000
    all_30 = {"processed": 30}
    took_all = wait_for(lambda: counts(prod_settings) == all_30, heartbeat + 45, "all 30")
    lease = prod_settings.processing_lease_s
    print(
        f"\n{len(held)} events held by the killed worker processed {took:.1f} s after restart;"
        f" all 30 after {took + took_all:.1f} s"
    )
    assert took < lease + 10  # Dramatiq alone would need >= its heartbeat timeout plus luck


def test_redis_down_during_ingestion_loses_nothing(prod_settings, hub_worker):
    proxy = Proxy("127.0.0.1", int(prod_settings.redis_url.rsplit(":", 1)[1].split("/")[0]))
    db = prod_settings.redis_url.rsplit("/", 1)[1]
    via_proxy = prod_settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{proxy.port}/{db}"}
    )
    proxy.down()
    with TestClient(create_app(via_proxy)) as client:
        answers = [post(client, stripe_request(stripe_event())) for _ in range(25)]
        assert {r.status_code for r in answers} == {200}
        # The failed hand-off hands the events to the sweeper.
        wait_for(lambda: counts(prod_settings) == {"received": 25}, 5, "25 received")
        assert client.get("/readyz").status_code == 503
        hub_worker()  # workers on the real Redis, waiting for work
        proxy.up()
        # The API process's sweeper finds the events that were never queued and sends them.
        wait_for(lambda: counts(prod_settings) == {"ignored": 25}, 30, "25 events ignored")
        assert client.get("/readyz").status_code == 200
    proxy.down()


def test_database_outage_answers_503_then_recovers_without_a_restart(prod_settings):
    """PostgreSQL goes away mid-traffic: senders get 503 (and retry), nothing is half-stored,
    and the same process stores again once the database is back."""
    proxy, url = in_front_of(prod_settings.database_url)
    proxy.up()
    via_proxy = prod_settings.model_copy(update={"database_url": url})
    with TestClient(create_app(via_proxy)) as client:
        assert post(client, stripe_request(stripe_event())).status_code == 200
        proxy.down()
        refused = stripe_event()
        r = post(client, stripe_request(refused))
        assert r.status_code == 503
        assert r.json()["error"] == "unavailable"
        proxy.up()
        # The sender's retry, signed afresh, lands on a pool that reconnects by itself.
        wait_for(lambda: post(client, stripe_request(refused)).status_code == 200, 15, "a 200")
    proxy.down()
    engine = make_engine(prod_settings.database_url)
    with engine.connect() as conn:
        ids = sorted(r[0] for r in conn.execute(select(events.c.delivery_id)))
    engine.dispose()
    assert refused["id"] in ids
    assert len(ids) == 2
