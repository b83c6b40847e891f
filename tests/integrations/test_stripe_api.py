"""The Stripe reader against a local server that answers like Stripe's API: objects as plain
dicts, thin events' related objects, and every failure as RateLimited/Transient/Permanent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from hub.config import Settings
from hub.container import outbound_clients
from integrations.outbound import Permanent, RateLimited, Transient
from integrations.stripe_api import StripeReader
from tests.fakes.stripe import API_KEY, StripeServer

DISPUTE = {"id": "du_1", "object": "dispute", "status": "won", "evidence": {"due_by": 1}}


@pytest.fixture
def fake() -> Iterator[StripeServer]:
    with StripeServer() as server:
        yield server
        assert server.errors == []


@pytest.fixture
def reader(fake: StripeServer) -> StripeReader:
    return StripeReader(API_KEY, fake.api_base, timeout=2)


def test_retrieve_answers_plain_data(fake: StripeServer, reader: StripeReader) -> None:
    fake.put(DISPUTE)
    got = reader.retrieve("dispute", "du_1")
    assert got == DISPUTE and type(got) is dict and type(got["evidence"]) is dict
    assert fake.fetched() == ["/v1/disputes/du_1"]


@pytest.mark.parametrize(
    ("object_type", "path"),
    [
        ("payout", "/v1/payouts/x_1"),
        ("radar.early_fraud_warning", "/v1/radar/early_fraud_warnings/x_1"),
        ("payment_intent", "/v1/payment_intents/x_1"),
        ("invoice", "/v1/invoices/x_1"),
    ],
)
def test_each_catalogue_object_is_read(
    fake: StripeServer, reader: StripeReader, object_type: str, path: str
) -> None:
    fake.put({"id": "x_1", "object": object_type})
    assert reader.retrieve(object_type, "x_1")["id"] == "x_1"
    assert fake.fetched() == [path]


def test_a_connected_accounts_object_is_read_in_that_account(
    fake: StripeServer, reader: StripeReader
) -> None:
    fake.put({"id": "po_1", "object": "payout", "status": "paid"}, account="acct_9")
    assert reader.retrieve("payout", "po_1", account="acct_9")["status"] == "paid"
    assert fake.calls[-1].headers["stripe-account"] == "acct_9"


def test_related_fetches_a_thin_events_object_in_its_context(
    fake: StripeServer, reader: StripeReader
) -> None:
    fake.put(DISPUTE, account="acct_9")
    thin = {
        "id": "evt_thin_1",
        "object": "v2.core.event",
        "type": "v1.charge.dispute.closed",
        "context": "acct_9",
        "related_object": {"id": "du_1", "type": "dispute", "url": "/v1/disputes/du_1"},
    }
    assert reader.related(thin) == DISPUTE
    (call,) = fake.calls
    assert call.headers["stripe-context"] == "acct_9"
    assert call.headers["stripe-request-trigger"] == "event=evt_thin_1"


@pytest.mark.parametrize(
    "url", ["https://evil.example/v1/disputes/du_1", "//evil.example/x", "/admin", None]
)
def test_related_refuses_urls_off_the_api(
    fake: StripeServer, reader: StripeReader, url: str | None
) -> None:
    thin = {"id": "evt_1", "related_object": {"id": "du_1", "type": "dispute", "url": url}}
    with pytest.raises(Permanent):
        reader.related(thin)
    assert fake.calls == []  # the key went nowhere


@pytest.mark.parametrize(
    ("status", "retry_after", "error", "wait"),
    [
        (429, 7, RateLimited, 7.0),
        (429, None, RateLimited, 1.0),  # Stripe often sends no Retry-After
        (500, None, Transient, None),
        (503, None, Transient, None),
        (409, None, Transient, None),  # lock_timeout
        (401, None, Permanent, None),
        (403, None, Permanent, None),
        (404, None, Permanent, None),
    ],
)
def test_failures_are_mapped_and_never_retried_in_the_thread(
    fake: StripeServer,
    reader: StripeReader,
    status: int,
    retry_after: float | None,
    error: type[Exception],
    wait: float | None,
) -> None:
    fake.put(DISPUTE)
    fake.fail_next(status=status, retry_after=retry_after)
    with pytest.raises(error) as info:
        reader.retrieve("dispute", "du_1")
    assert len(fake.calls) == 1  # the SDK's own retries (which sleep) are off
    if wait is not None:
        assert isinstance(info.value, RateLimited) and info.value.retry_after == wait
    assert API_KEY not in str(info.value) and "alue" not in str(info.value)


def test_a_dropped_connection_is_transient(fake: StripeServer, reader: StripeReader) -> None:
    fake.set_down("close")
    with pytest.raises(Transient, match="APIConnectionError"):
        reader.retrieve("dispute", "du_1")


def test_a_slow_answer_times_out(fake: StripeServer) -> None:
    fake.put(DISPUTE)
    fake.slow_next(2.5)
    with pytest.raises(Transient):
        StripeReader(API_KEY, fake.api_base, timeout=1).retrieve("dispute", "du_1")


def test_an_unknown_object_type_is_permanent(fake: StripeServer, reader: StripeReader) -> None:
    with pytest.raises(Permanent):
        reader.retrieve("customer", "cus_1")
    assert fake.calls == []


def test_the_sdk_is_not_imported_by_the_webhook_path() -> None:
    # The ingress and the composition load the adapters; only workers build a StripeReader.
    code = "import sys, hub.container, hub.ingest.asgi; print('stripe' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_key_is_a_secret_setting_and_builds_the_reader_only_when_set() -> None:
    settings = Settings(_env_file=None, stripe_api_key=API_KEY)  # type: ignore[call-arg]
    assert API_KEY not in repr(settings) and API_KEY not in str(settings.model_dump())
    assert settings.stripe_api_base == "https://api.stripe.com"
    assert isinstance(outbound_clients(settings).stripe, StripeReader)
    assert outbound_clients(Settings(_env_file=None)).stripe is None  # type: ignore[call-arg]
