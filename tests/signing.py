"""Requests signed the way the senders sign them: with the providers' own SDK helpers."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import stripe
from slack_sdk.signature import SignatureVerifier

STRIPE_SECRET = "whsec_test_secret_0123456789"
GITHUB_SECRET = "gh-hook-secret"
SLACK_SECRET = "slack-signing-secret-8f2a"


def stripe_event(event_type: str = "customer.updated", **data: Any) -> dict[str, Any]:
    """A Stripe event of a type no workflow handles (it ends `ignored`) unless told otherwise."""
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": data or {"id": "cus_1", "object": "customer", "email": "a@example.com"}},
    }


def stripe_request(
    event: dict[str, Any] | bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp or int(time.time())
    )
    return body, {"content-type": "application/json; charset=utf-8", "stripe-signature": header}


def github_request(
    event: str,
    payload: dict[str, Any],
    secret: str = GITHUB_SECRET,
    delivery: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "content-type": "application/json",
        "x-hub-signature-256": f"sha256={digest}",
        "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "user-agent": "GitHub-Hookshot/abc123",
    }


def slack_request(
    body: bytes,
    content_type: str = "application/json",
    secret: str = SLACK_SECRET,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    ts = str(timestamp or int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return body, {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature,
    }
