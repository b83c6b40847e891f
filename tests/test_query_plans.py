"""What the hub asks SQLite while webhooks arrive, incidents open and responders press buttons:
no statement on that path reads a whole table that grows with traffic.

The planner explains each statement as it runs (`EXPLAIN QUERY PLAN`, SQLite's plan for those
bound values). A plan step `SCAN <table>` walks every row (or every index entry) of the table:
harmless on the empty tables of a test, minutes per call on a year of events. Found this way:
the lookup of a redelivery's stored id scanned `events` (SQLite plans `(a, b) IN (VALUES ...)`
as a scan), so each Stripe retry cost a read of every event ever stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from handlers.outbox import records
from hub.admin.overview import snapshot
from hub.bootstrap import create_app
from hub.events.batch_insert import SQLITE_EXISTING
from hub.events.store import EventStore, NewEvent
from hub.incidents.changes import effects
from hub.runtime.db import make_engine
from tests.conftest import make_settings
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.signing import stripe_event, stripe_request
from tests.test_incident_flow import press, send, wait_for

# Tables that grow with every webhook or incident; the rest (routes, rules, tokens) stay small.
GROWING = {
    "events", "attempts", "incidents", "incident_keys", "incident_events",
    "incident_timeline", "effects", "rejections", "audit_log",
}  # fmt: skip


class Plans:
    """Every distinct statement run on SQLite while installed, with the planner's steps."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def __call__(
        self, conn: Any, cursor: Any, statement: str, params: Any, _ctx: Any, many: bool
    ) -> None:
        if many:  # the plan of one row's parameters is every row's
            params = params[0] if params else ()
        if conn.dialect.name != "sqlite" or not isinstance(params, tuple | list):
            return
        text = " ".join(statement.split())
        if not text.upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT", "WITH")):
            return
        with self._lock:
            if text in self.seen:
                return
        steps = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
        with self._lock:
            self.seen[text] = [step[-1] for step in steps]

    def full_scans(self) -> dict[str, list[str]]:
        """Statements that walk a growing table and are not bounded by a LIMIT (a page)."""
        found = {}
        for text, steps in self.seen.items():
            scans = [s for s in steps if s.startswith("SCAN ") and s.split()[1] in GROWING]
            if scans and " LIMIT " not in text:
                found[text] = scans
        return found


@pytest.fixture
def plans() -> Iterator[Plans]:
    recorder = Plans()
    event.listen(Engine, "before_cursor_execute", recorder)
    try:
        yield recorder
    finally:
        event.remove(Engine, "before_cursor_execute", recorder)


def test_webhooks_redeliveries_and_buttons_never_scan_a_growing_table(
    sqlite_url: str, slack: SlackServer, plans: Plans
) -> None:
    settings = make_settings(
        sqlite_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        slack_incident_channel="#incidents",
    )
    failed = [
        p.stripe_event(
            "payment_intent.payment_failed",
            p.payment_intent_failed(intent_id=f"pi_plan{n}"),
            account="acct_plans",
            event_id=f"evt_plan_failed_{n}",
        )
        for n in range(3)
    ]
    dispute = p.stripe_event("charge.dispute.created", p.dispute(), event_id="evt_plan_dp")
    with TestClient(create_app(settings)) as client:
        first = [send(client, "/webhooks/stripe", stripe_request(e)) for e in [*failed, dispute]]
        assert not any(answer["duplicate"] for answer in first)
        # Stripe retries a delivery it did not see answered: same event, a new signature.
        again = [send(client, "/webhooks/stripe", stripe_request(e)) for e in [*failed, dispute]]
        assert [a["event_id"] for a in again] == [a["event_id"] for a in first]
        assert all(answer["duplicate"] for answer in again)

        def two_messages() -> list[Any] | None:
            found = slack.messages("#incidents")
            return found if len(found) == 2 else None

        messages = wait_for(two_messages, what="two incident messages")
        incident_id = next(
            element["value"]
            for block in messages[0].blocks or []
            if block["type"] == "actions"
            for element in block["elements"]
        )
        press(client, slack, incident_id, "incident.ack", "U1")
        wait_for(lambda: slack.replies(messages[0].channel, messages[0].ts), what="the reply")

    # Under load a commit holds several deliveries, and retries come in bursts (after an
    # outage Stripe retries everything it could not deliver): the same lookup for many keys.
    engine = make_engine(sqlite_url)
    retries = [NewEvent("stripe", e["id"], e["type"], {}, b"{}") for e in [*failed, dispute]]
    new = NewEvent("github", "0c6d2b8e-9b1f-4f0e-a2c1-5d9f1e7a3b21", "ping", {}, b"{}")
    stored = EventStore(engine).insert([*retries, new])
    assert [s.event_id for s in stored[:4]] == [a["event_id"] for a in first]
    assert [s.duplicate for s in stored] == [True] * 4 + [False]
    both = EventStore(engine).insert([new, *retries])  # both providers' keys looked up
    assert [s.event_id for s in both] == [stored[4].event_id] + [a["event_id"] for a in first]
    # A delivery round claims, then finishes, one effect of each of its incidents together:
    # one statement for several ids (SQLite scans for a row-value IN on its own).
    with engine.begin() as conn:
        owed = conn.execute(select(effects).order_by(effects.c.id).limit(10)).all()
        assert len({e.incident_id for e in owed}) == 2
        claimed = records.claim_all(conn, owed)
        assert [e.id for e in claimed] == [e.id for e in owed]
        records.finish_all(conn, [records.Finished(e.id, e.incident_id, {}) for e in claimed])
    # The redelivery lookup runs on the driver's cursor (the ingress's writer, and
    # EventStore.insert), out of this recorder's sight: its plan, for a burst of retries.
    with engine.connect() as conn:
        keys = orjson.dumps([e["id"] for e in [*failed, dispute]]).decode()
        lookup = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {SQLITE_EXISTING}", ("stripe", keys))
        steps = [step[-1] for step in lookup]
    engine.dispose()
    assert any(s.startswith("SEARCH events USING") for s in steps), steps
    assert not [s for s in steps if s.startswith("SCAN ") and s.split()[1] in GROWING], steps

    assert len(plans.seen) > 20, sorted(plans.seen)  # the workers' and outbox's statements too
    assert plans.full_scans() == {}


def test_scrapes_and_the_console_overview_never_scan_a_growing_table(
    sqlite_url: str, plans: Plans
) -> None:
    """Prometheus scrapes every API process every 15 s or so, and the console's overview is
    its first page: neither may read every event ever stored. Only the settled history
    (processed, ignored, resolved) is counted in full, at most once per max age, by the
    scrape that finds its count stale."""
    settings = make_settings(sqlite_url)  # the default max age: a minute
    engine = make_engine(sqlite_url)
    with TestClient(create_app(settings)) as client:
        send(client, "/webhooks/stripe", stripe_request(stripe_event()))  # stored ignored
        assert client.get("/metrics").status_code == 200  # counts the history
        plans.seen.clear()
        assert client.get("/metrics").status_code == 200
        snapshot(engine)
    engine.dispose()
    counted = [t for t in plans.seen if " FROM events " in t and "count(" in t.lower()]
    assert counted, sorted(plans.seen)
    assert plans.full_scans() == {}
