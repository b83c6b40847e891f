"""The Stripe fake driven by the stripe SDK itself, so the hub's reader can trust its answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from tests.fakes.stripe import API_KEY, StripeServer


@pytest.fixture
def fake() -> Iterator[StripeServer]:
    with StripeServer() as server:
        yield server
        assert server.errors == []


def sdk(server: StripeServer, key: str = API_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.api_base}, max_network_retries=0)


def test_objects_are_read_back_through_the_sdk(fake: StripeServer) -> None:
    fake.put({"id": "du_1", "object": "dispute", "status": "won", "amount": 100})
    fake.put({"id": "po_1", "object": "payout", "status": "paid"}, account="acct_9")
    dispute = sdk(fake).v1.disputes.retrieve("du_1")
    assert (dispute.id, dispute.status) == ("du_1", "won")
    payout = sdk(fake).v1.payouts.retrieve("po_1", options={"stripe_account": "acct_9"})
    assert payout.status == "paid"
    assert fake.calls[-1].headers["stripe-account"] == "acct_9"
    assert fake.fetched() == ["/v1/disputes/du_1", "/v1/payouts/po_1"]


def test_errors_have_stripes_shape_and_the_sdk_classes(fake: StripeServer) -> None:
    fake.put({"id": "po_1", "object": "payout", "status": "paid"}, account="acct_9")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sdk(fake).v1.payouts.retrieve("po_1")  # without its account: not found
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.AuthenticationError) as auth:
        sdk(fake, "sk_test_other").v1.disputes.retrieve("du_1")
    assert auth.value.http_status == 401
    fake.fail_next(status=429, retry_after=3)
    with pytest.raises(stripe.RateLimitError) as limited:
        sdk(fake).v1.disputes.retrieve("du_1")
    assert limited.value.headers is not None and limited.value.headers["Retry-After"] == "3"
    fake.fail_next(status=500)
    with pytest.raises(stripe.APIError) as down:
        sdk(fake).v1.disputes.retrieve("du_1")
    assert down.value.http_status == 500
    assert down.value.json_body == {
        "error": {"type": "api_error", "message": "An unknown error occurred."}
    }
