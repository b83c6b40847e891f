"""Requests signed the way the senders sign them (integrations/signing.py: the providers' own
SDK helpers, as `hub demo` signs)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from integrations.signing import signature_headers

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
    signature = signature_headers("stripe", body, secret, timestamp)
    return body, {"content-type": "application/json; charset=utf-8", **signature}


def github_request(
    event: str,
    payload: dict[str, Any],
    secret: str = GITHUB_SECRET,
    delivery: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "content-type": "application/json",
        **signature_headers("github", body, secret),
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
    return body, {
        "content-type": content_type,
        **signature_headers("slack", body, secret, timestamp),
    }
