"""Slack: Events API, interactivity and slash commands, sharing one signature check.

Only the Events API carries a stable id (`event_id`). Interactions and commands get an id
derived from the exact signed request, so the same request maps to the same row while a
request signed afresh counts as a new delivery.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from integrations.base import (
    Delivery,
    Endpoint,
    HmacKeys,
    Malformed,
    SignatureInvalid,
    check_media_type,
    check_timestamp,
    keep_headers,
    load_object,
    parse_form,
    parse_int,
    string_field,
)

_JSON = frozenset({"application/json"})
_FORM = frozenset({"application/x-www-form-urlencoded"})
# Retry headers are kept so an operator can see why Slack sent an event more than once.
_KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-slack-request-timestamp",
    "x-slack-retry-num",
    "x-slack-retry-reason",
)
_PREFIX = "v0="


class SlackVerifier:
    """`X-Slack-Signature: v0=<hex HMAC(secret, "v0:{ts}:{body}")>` within the tolerance."""

    __slots__ = ("_keys", "_tolerance")

    def __init__(self, secrets: Sequence[str], tolerance: int = 300) -> None:
        self._keys = HmacKeys(secrets)
        self._tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        """Check the request and return the id derived from its timestamp and signature."""
        raw_timestamp = headers.get("x-slack-request-timestamp")
        signature = headers.get("x-slack-signature")
        if not raw_timestamp:
            raise SignatureInvalid("X-Slack-Request-Timestamp header is missing")
        if not signature:
            raise SignatureInvalid("X-Slack-Signature header is missing")
        # slack_sdk raises ValueError on a non-numeric timestamp; here it is a plain 401.
        timestamp = parse_int(raw_timestamp)
        if timestamp is None:
            raise SignatureInvalid("X-Slack-Request-Timestamp is not an integer timestamp")
        check_timestamp(timestamp, now, self._tolerance, "Slack")
        if not signature.startswith(_PREFIX):
            raise SignatureInvalid("X-Slack-Signature must look like v0=<hex>")
        signed_prefix = f"v0:{raw_timestamp}:".encode()
        if not self._keys.matches((signature[len(_PREFIX) :],), signed_prefix, body):
            raise SignatureInvalid(
                "X-Slack-Signature matches no configured signing secret "
                "(check HUB_SLACK_SIGNING_SECRETS against the app's Signing Secret)"
            )
        return derived_id(raw_timestamp, signature)


def derived_id(timestamp: str, signature: str) -> str:
    digest = hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()
    return "sig-" + digest[:40]


class _SlackEndpoint:
    provider: str = "slack"

    __slots__ = ("_verifier",)

    def __init__(self, secrets: Sequence[str], tolerance: int = 300) -> None:
        self._verifier = SlackVerifier(secrets, tolerance)


class SlackEventsEndpoint(_SlackEndpoint):
    """`POST /webhooks/slack/events`: Events API envelopes and the url_verification handshake."""

    path: str = "slack/events"

    __slots__ = ()

    def receive(self, headers: Mapping[str, str], body: bytes, now: float) -> Delivery:
        check_media_type(headers, _JSON, "the Slack Events API")
        derived = self._verifier.verify(headers, body, now)
        envelope = load_object(body)
        kind = string_field(envelope, "type", "Slack envelope")
        kept = keep_headers(headers, _KEPT_HEADERS)
        if kind == "url_verification":
            challenge = string_field(envelope, "challenge", "url_verification request")
            return Delivery("slack", "", kind, kept, challenge=challenge)
        if kind != "event_callback":
            # e.g. app_rate_limited: no event_id, so fall back to the signed request.
            return Delivery("slack", derived, kind, kept)
        # Retries reuse event_id (and add X-Slack-Retry-Num), so they dedupe downstream.
        event_id = string_field(envelope, "event_id", "event_callback envelope")
        inner = envelope.get("event")
        if not isinstance(inner, dict):
            raise Malformed("event_callback envelope has no event object")
        return Delivery("slack", event_id, string_field(inner, "type", "inner event"), kept)


class SlackInteractionsEndpoint(_SlackEndpoint):
    """`POST /webhooks/slack/interactions`: buttons and other interactivity, `payload=<json>`."""

    path: str = "slack/interactions"

    __slots__ = ()

    def receive(self, headers: Mapping[str, str], body: bytes, now: float) -> Delivery:
        check_media_type(headers, _FORM, "Slack interactivity")
        derived = self._verifier.verify(headers, body, now)
        raw = parse_form(body).get("payload")
        if raw is None:
            raise Malformed("form body has no payload field")
        payload = load_object(raw, "payload field")
        kind = string_field(payload, "type", "interaction payload")
        return Delivery("slack", derived, kind, keep_headers(headers, _KEPT_HEADERS))


class SlackCommandsEndpoint(_SlackEndpoint):
    """`POST /webhooks/slack/commands`: slash commands, plain form fields."""

    path: str = "slack/commands"

    __slots__ = ()

    def receive(self, headers: Mapping[str, str], body: bytes, now: float) -> Delivery:
        check_media_type(headers, _FORM, "a Slack slash command")
        derived = self._verifier.verify(headers, body, now)
        form = parse_form(body)
        command = string_field(form, "command", "slash command form")
        # Slack shows this body to the person at once (the real answer follows through the
        # response_url when a worker has run the command); it must arrive within 3 s.
        typed = f"{command} {form.get('text', '')}".strip()[:200]
        reply = {"response_type": "ephemeral", "text": f"Working on `{typed}`…"}
        kept = keep_headers(headers, _KEPT_HEADERS)
        return Delivery("slack", derived, command, kept, reply=reply)


def endpoints(secrets: Sequence[str], tolerance: int = 300) -> list[Endpoint]:
    return [
        SlackEventsEndpoint(secrets, tolerance),
        SlackInteractionsEndpoint(secrets, tolerance),
        SlackCommandsEndpoint(secrets, tolerance),
    ]
