"""Kinds no worker routes are stored `ignored` at ingest; a newly routed kind loses nothing.

Workers publish their routing table to the database; the API reads it
(hub/events/routed_kinds.py). The rolling-deploy case, an API that has not yet seen a kind a
new worker routes, is run for real against PostgreSQL and Redis at the end."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy import event as sa_event
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.events import routed_kinds
from hub.events.batch_insert import BatchInsert, InsertPlan
from hub.events.models import Status, utcnow
from hub.events.routed_kinds import RouteTable, catch_up, publish, routes
from hub.events.store import EventStore, NewEvent, attempts, events
from hub.runtime.db import make_engine, write
from tests.conftest import make_settings
from tests.signing import github_request, stripe_event, stripe_request
from tests.test_services import post, wait_for

PING = {"zen": "Keep it logically awesome.", "hook_id": 1}


def rows(engine: Engine) -> dict[str, tuple[str, int]]:
    with engine.connect() as conn:
        found = conn.execute(select(events.c.id, events.c.status, events.c.runs))
        return {eid: (status, runs) for eid, status, runs in found}


def attempt_count(engine: Engine, event_id: str) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(attempts.c.id).where(attempts.c.event_id == event_id)).all())


def test_unrouted_kinds_are_stored_ignored_without_running_a_worker(sqlite_url):
    settings = make_settings(sqlite_url)
    engine = make_engine(sqlite_url)
    with TestClient(create_app(settings)) as client:
        unrouted = post(client, stripe_request(stripe_event("customer.updated"))).json()
        routed = post(client, github_request("ping", PING)).json()
        wait_for(lambda: rows(engine)[routed["event_id"]][0] == "processed", 10, "the ping")
    found = rows(engine)
    # runs == 0: no worker claimed it; the claim would have counted a run.
    assert found[unrouted["event_id"]] == ("ignored", 0)
    assert attempt_count(engine, unrouted["event_id"]) == 0
    assert found[routed["event_id"]] == ("processed", 1)
    with engine.connect() as conn:
        published = set(conn.execute(select(routes.c.kind)).scalars())
    assert {"github:ping", "stripe:payout.failed", "slack:block_actions"} <= published
    assert "stripe:customer.updated" not in published
    engine.dispose()


def test_with_reloading_off_every_event_goes_through_the_queue(sqlite_url):
    settings = make_settings(sqlite_url, routes_refresh_s=0)
    engine = make_engine(sqlite_url)
    with TestClient(create_app(settings)) as client:
        unrouted = post(client, stripe_request(stripe_event("customer.updated"))).json()
        wait_for(lambda: rows(engine)[unrouted["event_id"]] == ("ignored", 1), 10, "the claim")
    engine.dispose()


def test_an_api_that_knows_no_routes_yet_sends_everything_to_the_queue(sqlite_url):
    engine = make_engine(sqlite_url)
    table = RouteTable(engine, refresh_s=5)
    table.start()
    try:
        assert table.wants("stripe", "customer.updated")  # empty table: nothing is known
        publish(engine, ["github:ping"])
        table.reload()
        assert table.wants("github", "ping")
        assert not table.wants("stripe", "customer.updated")
    finally:
        table.stop()
        engine.dispose()


def _store(engine: Engine, kind: str, *, routed: bool, received_ago_s: float = 0) -> str:
    """One event as the ingress stores it, received `received_ago_s` ago."""
    provider, _, type_ = kind.partition(":")
    event = NewEvent(provider, uuid.uuid4().hex, type_, {}, b"{}", routed)
    now = utcnow() - timedelta(seconds=received_ago_s)
    plan = InsertPlan.of([event], Status.QUEUED, now, now + timedelta(seconds=300))
    with write(engine) as conn:
        (eid,) = BatchInsert(engine.dialect.name)(conn, plan)
    return eid


def test_a_newly_routed_kind_takes_back_what_an_older_api_ignored_once(engine):
    store = EventStore(engine)
    publish(engine, ["github:ping"])  # the old release routes pings only
    slipped = _store(engine, "stripe:payout.failed", routed=False)  # an API on the old set
    before = _store(engine, "stripe:payout.failed", routed=False, received_ago_s=3600)
    other = _store(engine, "stripe:customer.updated", routed=False)
    by_worker = _store(engine, "stripe:payout.failed", routed=True)
    store.claim([by_worker], routed=["github:ping"])  # an old worker ignored it: runs 1
    assert catch_up(engine, timedelta(0)) == 0  # the old kinds were caught up before

    publish(engine, ["github:ping", "stripe:payout.failed"])  # the new release starts
    assert catch_up(engine, timedelta(seconds=60)) == 0  # APIs may still be reloading
    assert catch_up(engine, timedelta(0)) == 1
    found = rows(engine)
    assert found[slipped] == ("received", 0)  # the sweeper hands it to a worker
    # An hour before the kind was published, nothing routed it: it stays as it was.
    assert found[before] == ("ignored", 0)
    assert found[other] == ("ignored", 0)
    assert found[by_worker] == ("ignored", 1)
    assert slipped in store.sweep(untouched_since=None)
    # Once per kind: a second pass (another worker) takes nothing back.
    again = _store(engine, "stripe:payout.failed", routed=False)
    assert catch_up(engine, timedelta(0)) == 0
    assert rows(engine)[again] == ("ignored", 0)


def test_the_catch_up_walks_a_long_history_in_short_transactions(engine, monkeypatch):
    """Many chunks (here of 3 events) and events of several kinds interleaved: every event
    of the new kinds is taken back, whichever chunk it falls in, and nothing else."""
    monkeypatch.setattr(routed_kinds, "CATCH_UP_CHUNK", 3)
    commits: list[int] = []
    sa_event.listen(engine, "commit", lambda _conn: commits.append(1))
    publish(engine, ["github:ping"])
    catch_up(engine, timedelta(0))
    kinds = ["stripe:payout.failed", "stripe:customer.updated", "github:check_run.completed"]
    slipped = {k: [_store(engine, k, routed=False) for _ in range(5)] for k in kinds}
    publish(engine, ["github:ping", kinds[0], kinds[2]])
    commits.clear()

    assert catch_up(engine, timedelta(0)) == 10
    found = rows(engine)
    assert {found[e] for e in slipped[kinds[0]] + slipped[kinds[2]]} == {("received", 0)}
    assert {found[e] for e in slipped[kinds[1]]} == {("ignored", 0)}
    assert len(commits) >= 15 // 3  # one short transaction per chunk, not one for all
    assert catch_up(engine, timedelta(0)) == 0


def test_a_catch_up_with_nothing_to_take_back_walks_without_taking_the_writer(engine, monkeypatch):
    """The usual case: every API knew the new kinds before their first event. The walk over
    what was stored since reads; SQLite's one writer, which every webhook's commit waits
    for, is taken once, to mark the kinds caught up."""
    monkeypatch.setattr(routed_kinds, "CATCH_UP_CHUNK", 3)
    publish(engine, ["github:ping"])
    catch_up(engine, timedelta(0))
    others = [_store(engine, "stripe:customer.updated", routed=False) for _ in range(10)]
    publish(engine, ["github:ping", "stripe:payout.failed"])
    commits: list[int] = []
    sa_event.listen(engine, "commit", lambda _conn: commits.append(1))

    assert catch_up(engine, timedelta(0)) == 0
    assert len(commits) == 1
    assert {rows(engine)[e] for e in others} == {("ignored", 0)}


def test_a_rule_glob_takes_back_its_kinds_and_the_api_wants_them(engine):
    """A routing rule's `type: "check_run.*"` is published as a glob: the catch-up takes back
    the kinds it covers (LIKE, with `_` literal, not a wildcard) and the API's table wants
    them, and nothing else."""
    publish(engine, ["github:ping"])
    catch_up(engine, timedelta(0))
    check = _store(engine, "github:check_run.completed", routed=False)
    star = _store(engine, "github:star.created", routed=False)
    lookalike = _store(engine, "github:checkXrun.completed", routed=False)  # `_` is literal
    publish(engine, ["github:ping", "github:check_run.*"])
    assert catch_up(engine, timedelta(0)) == 1
    found = rows(engine)
    assert found[check] == ("received", 0)
    assert found[star] == found[lookalike] == ("ignored", 0)
    table = RouteTable(engine, 5.0)
    table.reload()
    assert table.wants("github", "check_run.requested")
    assert table.wants("github", "ping")
    assert not table.wants("github", "star.created")
    assert not table.wants("github", "checkXrun.completed")


@pytest.fixture
def prod_settings(prod_settings: Settings) -> Settings:
    return prod_settings.model_copy(update={"routes_refresh_s": 1.0})


@pytest.mark.services
def test_a_rolling_deploy_that_adds_a_route_loses_no_event(prod_settings, hub_worker):
    """The API runs on the old routing table (no `github:ping`) when a new worker starts: a
    ping it stored `ignored` is processed after all, and later pings go straight through."""
    engine = make_engine(prod_settings.database_url)
    publish(engine, ["stripe:payout.failed"])
    with TestClient(create_app(prod_settings)) as client:
        early = post(client, github_request("ping", PING)).json()["event_id"]
        assert rows(engine)[early] == ("ignored", 0)
        hub_worker()
        wait_for(lambda: rows(engine)[early] == ("processed", 1), 30, "the early ping")
        late = post(client, github_request("ping", PING)).json()["event_id"]
        wait_for(lambda: rows(engine)[late] == ("processed", 1), 30, "the late ping")
    assert attempt_count(engine, early) == 1
    engine.dispose()
