"""A thin, read-only Stripe client for the billing workflows: what is true of an object now.

Stripe delivers events out of order and sends thin events that carry no object at all; both
Stripe and dj-stripe answer that with a fetch of the object's current state. This module is
the only one that imports the stripe SDK (slow to import): the webhook path never loads it.

Retries. `max_network_retries=0`: the SDK's own retry sleeps (half a second and more) in the
calling worker thread. A failure leaves at once as `RateLimited` (429, with its Retry-After
when Stripe sends one), `Transient` (5xx, 409 lock timeouts, timeouts, dropped connections)
or `Permanent` (401, 403, 404, other 4xx); the caller blocks the shared budget, falls back to
the event's own object, or retries the event later. Reasons never quote the SDK's messages:
an authentication error repeats part of the key."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import stripe

from integrations.outbound import OutboundError, Permanent, RateLimited, Transient, seconds

# The objects the catalogue confirms or fetches, by Stripe's object tag (`object` and a thin
# event's `related_object.type`), to the SDK's service that retrieves them.
_SERVICES: dict[str, Callable[[stripe.StripeClient], Any]] = {
    "dispute": lambda c: c.v1.disputes,
    "payout": lambda c: c.v1.payouts,
    "radar.early_fraud_warning": lambda c: c.v1.radar.early_fraud_warnings,
    "payment_intent": lambda c: c.v1.payment_intents,
    "invoice": lambda c: c.v1.invoices,
}
OBJECT_TYPES = frozenset(_SERVICES)
# A related object's URL is a path on the configured API (`/v1/disputes/du_...`); anything
# else is refused, so the key is only ever sent to HUB_STRIPE_API_BASE.
_API_PATHS = ("/v1/", "/v2/")


class StripeReader:
    def __init__(self, api_key: str, api_base: str, timeout: float = 10.0) -> None:
        sdk_log = logging.getLogger("stripe")
        if sdk_log.level == logging.NOTSET:
            # The SDK logs every request at INFO, and Stripe's error messages with it (a 401
            # quotes the key's last characters); an operator who sets a level keeps it.
            sdk_log.setLevel(logging.WARNING)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            max_network_retries=0,
            # The SDK's default timeout is 80 s; a worker thread must not hang on a read.
            http_client=stripe.RequestsClient(timeout=max(1, math.ceil(timeout))),
        )

    def check_key(self) -> None:
        """A cheap read that proves the key (`hub doctor`): a dispute that does not exist.
        Stripe's 404 means the key was accepted and may read disputes; a 401 (wrong key) or
        403 (a restricted key without that permission) raises Permanent."""
        try:
            self._client.v1.disputes.retrieve("du_hub_doctor_check")
        except stripe.StripeError as exc:
            if exc.http_status != 404:
                raise _mapped("key check", exc) from None

    def retrieve(
        self, object_type: str, object_id: str, *, account: str | None = None
    ) -> dict[str, Any]:
        """The object as Stripe has it now; `account` for a connected account's object."""
        service = _SERVICES.get(object_type)
        if service is None:
            raise Permanent(f"Stripe: no reader for {object_type!r} objects")
        options: dict[str, Any] = {"stripe_account": account} if account else {}
        what = f"GET {object_type}"
        found = _call(what, lambda: service(self._client).retrieve(object_id, options=options))
        data = found.to_dict() if hasattr(found, "to_dict") else found
        return _object(what, data)

    def related(self, thin_event: Mapping[str, Any]) -> dict[str, Any]:
        """A thin event's `related_object`, fetched as the SDK's `fetch_related_object` does:
        a GET of its `url` in the event's `context` (the connected account, if any)."""
        ref = thin_event.get("related_object")
        url = ref.get("url") if isinstance(ref, Mapping) else None
        if not isinstance(url, str) or not url.startswith(_API_PATHS) or "//" in url:
            raise Permanent("Stripe: the thin event has no related object URL on the API")
        kind = str(ref.get("type") or "object") if isinstance(ref, Mapping) else "object"
        options: dict[str, Any] = {
            "headers": {"Stripe-Request-Trigger": f"event={thin_event.get('id')}"}
        }
        if isinstance(context := thin_event.get("context"), str) and context:
            options["stripe_context"] = context
        what = f"GET {kind}"
        response = _call(what, lambda: self._client.raw_request("get", url, **options))
        return _object(what, getattr(response, "data", None))


def _object(what: str, data: object) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise Permanent(f"Stripe: {what} did not answer an object")
    return dict(data)


def _call(what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except stripe.StripeError as exc:
        raise _mapped(what, exc) from None


def _mapped(what: str, exc: stripe.StripeError) -> OutboundError:
    status = exc.http_status
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        wait = _retry_after(exc.headers)
        return RateLimited(f"Stripe: {what} answered 429 (retry after {wait:g} s)", wait)
    if isinstance(exc, stripe.APIConnectionError) or status is None:
        return Transient(f"Stripe: {what}: {type(exc).__name__}")
    if status >= 500 or status in (408, 409):  # 409: a lock timeout on the object
        return Transient(f"Stripe: {what} answered {status}")
    # 401 a wrong or revoked key, 403 a restricted key without this permission, 404 an object
    # of another account or mode: the same call fails the same way until someone fixes it.
    code = f" ({str(exc.code)[:60]})" if exc.code else ""
    return Permanent(f"Stripe: {what} answered {status}{code}")


def _retry_after(headers: Any) -> float:
    """Stripe's Retry-After when it sends one (often it does not); else a second."""
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after" and (wait := seconds(value)) is not None:
            return wait
    return 1.0
