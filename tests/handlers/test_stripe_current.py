"""Stripe workflows decide from what Stripe reports now (HUB_STRIPE_API_KEY set), through the
real routing table, against a local server that answers like Stripe's API; and degrade to the
event-order rule, never to a lost or failed event, when Stripe cannot answer."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import stripe as stripe_sdk
from sqlalchemy import select

from handlers.context import WorkflowContext
from handlers.dispatch import route_events
from handlers.routing_table import ROUTES
from handlers.triggers.current import BUDGET, MAX_WAIT_S
from hub.events.store import attempts, event_bodies, events, with_bodies
from hub.ratelimits.outbound import LocalLimits
from integrations.signing import signature_headers
from integrations.stripe import StripeEndpoint
from integrations.stripe_api import StripeReader
from tests.fakes.stripe import API_KEY, StripeServer
from tests.handlers import payloads as p
from tests.handlers.conftest import all_incidents, rows, store_event

SECRET = "whsec_thin_events_0123456789"
DISPUTE_ID = "dp_1PQ8xvLkdIwHu7ixW0e5kT6p"
PAYOUT_ID = "po_1PQ9AbLkdIwHu7ixq2H1ZsVu"


class CountingLimits(LocalLimits):
    def __init__(self) -> None:
        super().__init__()
        self.reserved: list[tuple[str, float]] = []

    def reserve(self, key: str, spacing_s: float) -> float:
        self.reserved.append((key, spacing_s))
        return super().reserve(key, spacing_s)


@pytest.fixture
def fake() -> Iterator[StripeServer]:
    with StripeServer() as server:
        yield server
        assert server.errors == []


@pytest.fixture
def keyed(any_ctx: WorkflowContext, fake: StripeServer) -> WorkflowContext:
    """The workers' context with a Stripe key, pointed at the fake (SQLite, then PostgreSQL)."""
    reader = StripeReader(API_KEY, fake.api_base, timeout=2)
    return dataclasses.replace(any_ctx, stripe=reader, limits=CountingLimits())


def deliver(ctx: WorkflowContext, kind: str, payload: dict[str, Any], n: int = 1) -> str:
    event = p.stripe_event(kind, payload, event_id=f"evt_{kind}_{n}")
    event_id = store_event(ctx, "stripe", kind, event)
    route_events(ctx, [event_id], ROUTES)
    return event_id


def live(ctx: WorkflowContext) -> list[Any]:
    return [i for i in all_incidents(ctx) if i.status != "resolved"]


def attempt(ctx: WorkflowContext, event_id: str) -> Any:
    return rows(ctx, attempts, attempts.c.event_id == event_id)[-1]


def status_of(ctx: WorkflowContext, event_id: str) -> str:
    with ctx.engine.connect() as conn:
        return str(conn.execute(select(events.c.status).where(events.c.id == event_id)).scalar())


# --- snapshot events confirmed against the current state ------------------------------------


def test_a_late_dispute_created_for_a_dispute_stripe_reports_won_opens_nothing(keyed, fake):
    fake.put(p.dispute(status="won"))
    created = deliver(keyed, "charge.dispute.created", p.dispute(status="needs_response"))
    assert live(keyed) == [] and all_incidents(keyed) == []  # a tombstone, nothing to show
    assert status_of(keyed, created) == "processed"
    assert fake.fetched() == [f"/v1/disputes/{DISPUTE_ID}"]
    # The closing event that comes next is the same change again: stale.
    closed = deliver(keyed, "charge.dispute.closed", p.dispute(status="won"), 2)
    assert attempt(keyed, closed).outcome == "stale" and live(keyed) == []


def test_an_open_dispute_opens_and_its_close_resolves(keyed, fake):
    fake.put(p.dispute(status="needs_response"))
    deliver(keyed, "charge.dispute.created", p.dispute())
    (incident,) = live(keyed)
    assert incident.key == f"stripe:dispute:{DISPUTE_ID}"
    fake.put(p.dispute(status="lost"))
    deliver(keyed, "charge.dispute.closed", p.dispute(status="lost"), 2)
    assert live(keyed) == []


def test_a_failed_payout_stripe_now_reports_paid_opens_nothing_live(keyed, fake):
    fake.put(p.payout(status="paid"))
    deliver(keyed, "payout.failed", p.payout(status="failed"))
    assert live(keyed) == []
    assert fake.fetched() == [f"/v1/payouts/{PAYOUT_ID}"]


def test_a_paid_event_for_a_payout_that_has_since_failed_opens(keyed, fake):
    # Stripe: "Some payouts that fail might initially show as paid, then change to failed".
    fake.put(p.payout(status="failed"))
    deliver(keyed, "payout.paid", p.payout(status="paid"))
    (incident,) = live(keyed)
    assert incident.severity == "sev1" and "account_closed" in incident.title


def test_a_connected_accounts_object_is_read_in_its_account(keyed, fake):
    fake.put(p.dispute(status="won"), account="acct_1Conn")
    event = p.stripe_event("charge.dispute.created", p.dispute(), account="acct_1Conn")
    route_events(keyed, [store_event(keyed, "stripe", "charge.dispute.created", event)], ROUTES)
    assert live(keyed) == [] and fake.calls[-1].headers["stripe-account"] == "acct_1Conn"


@pytest.mark.parametrize(
    ("status", "retry_after"), [(500, None), (503, None), (429, 30), (401, None)]
)
def test_stripe_failing_falls_back_to_the_events_own_object(
    keyed, fake, caplog, status, retry_after
):
    fake.fail_next(status=status, retry_after=retry_after)
    with caplog.at_level(logging.WARNING):
        created = deliver(keyed, "charge.dispute.created", p.dispute())
    (incident,) = live(keyed)  # decided by the event, as without a key
    assert incident.key == f"stripe:dispute:{DISPUTE_ID}"
    assert status_of(keyed, created) == "processed" and attempt(keyed, created).outcome == "ok"
    (warning,) = [r for r in caplog.records if r.name == "handlers.triggers.current"]
    text = warning.getMessage()
    assert created in text and str(status) in text and "event's own object" in text
    assert API_KEY not in caplog.text and "alue" not in caplog.text


def test_a_429_blocks_the_shared_budget_for_its_retry_after(keyed, fake, caplog):
    fake.put(p.dispute(status="won"))
    fake.fail_next(status=429, retry_after=MAX_WAIT_S + 30)
    deliver(keyed, "charge.dispute.created", p.dispute())
    # The next event does not call Stripe while the budget is blocked: it decides by type.
    deliver(keyed, "charge.dispute.closed", p.dispute(status="won"), 2)
    assert len(fake.calls) == 1 and live(keyed) == []
    assert "read budget is spent" in caplog.text


def test_a_dropped_connection_falls_back(keyed, fake):
    fake.set_down("close")
    created = deliver(keyed, "payout.failed", p.payout())
    assert status_of(keyed, created) == "processed" and len(live(keyed)) == 1


def test_reads_are_paced_under_the_stripe_budget(keyed, fake):
    fake.put(p.dispute())
    deliver(keyed, "charge.dispute.created", p.dispute())
    assert keyed.limits.reserved == [(BUDGET, 1 / keyed.settings.stripe_reads_per_second)]


def test_without_a_key_nothing_is_fetched_and_the_event_decides(ctx, fake):
    assert ctx.stripe is None
    deliver(ctx, "charge.dispute.created", p.dispute())
    assert len(live(ctx)) == 1 and fake.calls == []


def test_unconfirmed_kinds_are_not_fetched(keyed, fake):
    deliver(keyed, "payment_intent.payment_failed", p.payment_intent_failed())
    assert fake.calls == [] and len(live(keyed)) == 1


# --- thin events -----------------------------------------------------------------------------


def thin_event(kind: str, ref: dict[str, str], context: str | None = None) -> bytes:
    event: dict[str, Any] = {
        "id": "evt_test_65SxThinDispute0001",
        "object": "v2.core.event",
        "type": kind,
        "livemode": False,
        "created": "2025-06-10T06:13:20.000Z",
        "related_object": ref,
        "reason": {"type": "request", "request": {"id": "req_1", "idempotency_key": "k"}},
    }
    if context is not None:
        event["context"] = context
    return orjson.dumps(event)


DISPUTE_REF = {"id": DISPUTE_ID, "type": "dispute", "url": f"/v1/disputes/{DISPUTE_ID}"}


def receive_thin(ctx: WorkflowContext, body: bytes) -> str:
    """Verified by the hub's endpoint as a delivery is, stored raw, then routed."""
    headers = {"content-type": "application/json", **signature_headers("stripe", body, SECRET)}
    delivery = StripeEndpoint([SECRET]).receive(headers, body, now=time.time())
    # The SDK's own parser accepts the same signed body: the thin event is genuine.
    parsed = stripe_sdk.StripeClient("sk_test_x").parse_event_notification(
        body, headers["stripe-signature"], SECRET
    )
    assert (parsed.id, parsed.type) == (delivery.delivery_id, delivery.type)
    event_id = store_event(ctx, "stripe", delivery.type, {}, body=body)
    route_events(ctx, [event_id], ROUTES)
    return event_id


def test_a_thin_event_is_stored_raw_and_decided_from_its_fetched_object(keyed, fake):
    fake.put(p.dispute(status="needs_response"), account="acct_1Conn")
    body = thin_event("v1.charge.dispute.created", DISPUTE_REF, context="acct_1Conn")
    event_id = receive_thin(keyed, body)
    with keyed.engine.connect() as conn:
        stored = conn.execute(
            select(events, event_bodies.c.body)
            .select_from(with_bodies)
            .where(events.c.id == event_id)
        ).one()
    assert bytes(stored.body) == body and stored.type == "v1.charge.dispute.created"
    (incident,) = live(keyed)
    assert incident.key == f"stripe:dispute:{DISPUTE_ID}" and "fraudulent" in incident.title
    (call,) = fake.calls
    assert call.path == f"/v1/disputes/{DISPUTE_ID}"
    assert call.headers["stripe-context"] == "acct_1Conn"
    assert call.headers["stripe-request-trigger"] == "event=evt_test_65SxThinDispute0001"
    assert attempt(keyed, event_id).workflow == "handlers.billing.dispute_now"


def test_a_thin_closed_event_resolves_from_the_current_state(keyed, fake):
    fake.put(p.dispute(status="needs_response"))
    deliver(keyed, "charge.dispute.created", p.dispute())
    fake.put(p.dispute(status="won"))
    receive_thin(keyed, thin_event("v1.charge.dispute.closed", DISPUTE_REF))
    assert live(keyed) == []


def test_a_thin_payout_event_is_keyed_like_its_snapshot(keyed, fake):
    fake.put(p.payout(status="failed"))
    ref = {"id": PAYOUT_ID, "type": "payout", "url": f"/v1/payouts/{PAYOUT_ID}"}
    receive_thin(keyed, thin_event("v1.payout.failed", ref))
    (incident,) = live(keyed)
    assert incident.key == "stripe:payout:platform:ba_1PQ1ZyLkdIwHu7ixDn0RzJ3E"


def test_without_a_key_a_thin_event_is_processed_and_says_why(ctx, fake, caplog):
    with caplog.at_level(logging.WARNING):
        event_id = receive_thin(ctx, thin_event("v1.charge.dispute.created", DISPUTE_REF))
    assert status_of(ctx, event_id) == "processed" and all_incidents(ctx) == []
    run = attempt(ctx, event_id)
    assert run.outcome == "unfetched" and "HUB_STRIPE_API_KEY" in run.detail
    assert "HUB_STRIPE_API_KEY is not set" in caplog.text


def test_a_thin_event_whose_object_is_gone_is_processed_unfetched(keyed, fake):
    event_id = receive_thin(keyed, thin_event("v1.charge.dispute.created", DISPUTE_REF))
    assert status_of(keyed, event_id) == "processed" and all_incidents(keyed) == []
    assert attempt(keyed, event_id).outcome == "unfetched"
    assert "404" in attempt(keyed, event_id).detail


def test_a_thin_event_during_an_outage_is_retried_not_lost(keyed, fake):
    fake.fail_next(status=503)
    event_id = receive_thin(keyed, thin_event("v1.charge.dispute.created", DISPUTE_REF))
    assert status_of(keyed, event_id) == "queued"  # retried with the workers' backoff
    run = attempt(keyed, event_id)
    assert run.outcome == "error" and "503" in run.error and API_KEY not in run.error
    fake.put(p.dispute())
    route_events(keyed, [event_id], ROUTES)  # the retry, once Stripe answers
    assert status_of(keyed, event_id) == "processed" and len(live(keyed)) == 1
