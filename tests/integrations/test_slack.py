"""Slack endpoints, signed with slack_sdk's own SignatureVerifier."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

import orjson
import pytest
from slack_sdk.signature import SignatureVerifier

from integrations.base import InboundError, Malformed, SignatureInvalid, UnsupportedMediaType
from integrations.slack import (
    SlackCommandsEndpoint,
    SlackEventsEndpoint,
    SlackInteractionsEndpoint,
    endpoints,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
OTHER = "0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000.0
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MENTION = orjson.dumps(
    {
        "type": "event_callback",
        "team_id": "T1",
        "event_id": "Ev08MFMKH6",
        "event": {"type": "app_mention", "text": "<@U1> help", "channel": "C1"},
    }
)
INTERACTION = urlencode(
    {"payload": orjson.dumps({"type": "block_actions", "actions": [{"value": "ack"}]}).decode()}
).encode()
COMMAND = urlencode(
    {"command": "/incident", "text": "open db down", "user_id": "U1", "team_id": "T1"}
).encode()

Endpoint = SlackEventsEndpoint | SlackInteractionsEndpoint | SlackCommandsEndpoint


def sign(body: bytes, secret: str = SECRET, timestamp: float = NOW) -> str:
    signature = SignatureVerifier(secret).generate_signature(
        timestamp=str(int(timestamp)), body=body
    )
    assert signature is not None
    return signature


def headers(
    body: bytes,
    content_type: str | None = JSON,
    secret: str = SECRET,
    timestamp: float = NOW,
) -> dict[str, str]:
    out = {
        "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "x-slack-request-timestamp": str(int(timestamp)),
        "x-slack-signature": sign(body, secret, timestamp),
    }
    if content_type is not None:
        out["content-type"] = content_type
    return out


def refused(
    kind: type[InboundError],
    endpoint: Endpoint,
    hdrs: dict[str, str],
    body: bytes,
) -> InboundError:
    with pytest.raises(kind) as caught:
        endpoint.receive(hdrs, body, NOW)
    error = caught.value
    for secret in (SECRET, OTHER):
        assert secret not in str(error)
        assert sign(body, secret)[3:] not in str(error)
    return error


def events(*secrets: str, tolerance: int = 300) -> SlackEventsEndpoint:
    return SlackEventsEndpoint(secrets or (SECRET,), tolerance)


def test_url_verification_returns_the_challenge() -> None:
    body = b'{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",'
    body += b'"type":"url_verification"}'
    delivery = events().receive(headers(body), body, NOW)
    assert delivery.type == "url_verification"
    assert delivery.challenge == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    assert (delivery.provider, delivery.delivery_id) == ("slack", "")


def test_url_verification_without_challenge_is_400() -> None:
    body = b'{"type":"url_verification"}'
    refused(Malformed, events(), headers(body), body)


def test_event_callback_uses_event_id_and_inner_type() -> None:
    hdrs = headers(MENTION, "application/json; charset=utf-8")
    delivery = events().receive(hdrs, MENTION, NOW)
    assert (delivery.provider, delivery.delivery_id, delivery.type) == (
        "slack",
        "Ev08MFMKH6",
        "app_mention",
    )
    assert delivery.challenge is None
    assert delivery.headers == {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "x-slack-request-timestamp": str(int(NOW)),
    }


def test_retry_keeps_the_event_id_and_its_headers() -> None:
    retry_at = NOW + 60
    hdrs = headers(MENTION, timestamp=retry_at)
    hdrs |= {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    delivery = events().receive(hdrs, MENTION, retry_at)
    assert delivery.delivery_id == "Ev08MFMKH6"
    assert delivery.headers["x-slack-retry-num"] == "1"
    assert delivery.headers["x-slack-retry-reason"] == "http_timeout"
    assert "x-slack-signature" not in delivery.headers


@pytest.mark.parametrize(
    "envelope",
    [
        {"type": "event_callback", "event": {"type": "app_mention"}},
        {"type": "event_callback", "event_id": "Ev1"},
        {"type": "event_callback", "event_id": "Ev1", "event": {"text": "no type"}},
        {"event_id": "Ev1"},
    ],
)
def test_incomplete_envelopes_are_400(envelope: dict[str, object]) -> None:
    body = orjson.dumps(envelope)
    refused(Malformed, events(), headers(body), body)


def test_other_envelope_types_use_a_derived_id() -> None:
    body = b'{"type":"app_rate_limited","team_id":"T1","minute_rate_limited":1518467820}'
    delivery = events().receive(headers(body), body, NOW)
    assert delivery.type == "app_rate_limited"
    assert delivery.delivery_id.startswith("sig-")


def test_rotation_accepts_the_second_secret() -> None:
    delivery = events(SECRET, OTHER).receive(headers(MENTION, secret=OTHER), MENTION, NOW)
    assert delivery.delivery_id == "Ev08MFMKH6"


def test_wrong_secret_is_refused() -> None:
    error = refused(SignatureInvalid, events(SECRET, OTHER), headers(MENTION, secret="x"), MENTION)
    assert "matches no configured signing secret" in error.reason


@pytest.mark.parametrize("name", ["x-slack-signature", "x-slack-request-timestamp"])
def test_missing_header_is_refused(name: str) -> None:
    hdrs = headers(MENTION)
    del hdrs[name]
    error = refused(SignatureInvalid, events(), hdrs, MENTION)
    assert "header is missing" in error.reason


def test_stale_timestamp_is_refused() -> None:
    error = refused(SignatureInvalid, events(), headers(MENTION, timestamp=NOW - 412), MENTION)
    assert "timestamp is 412 s old; tolerance is 300 s" in error.reason


def test_future_timestamp_is_refused() -> None:
    error = refused(SignatureInvalid, events(), headers(MENTION, timestamp=NOW + 400), MENTION)
    assert "timestamp is 400 s in the future; tolerance is 300 s" in error.reason


@pytest.mark.parametrize("timestamp", ["soon", "1700000000.5", "-1", ""])
def test_non_numeric_timestamp_is_401_not_an_exception(timestamp: str) -> None:
    hdrs = headers(MENTION) | {"x-slack-request-timestamp": timestamp}
    refused(SignatureInvalid, events(), hdrs, MENTION)


def test_signature_without_v0_prefix_is_refused() -> None:
    hdrs = headers(MENTION)
    hdrs["x-slack-signature"] = hdrs["x-slack-signature"][3:]
    refused(SignatureInvalid, events(), hdrs, MENTION)


def test_tampered_body_is_refused() -> None:
    hdrs = headers(MENTION)
    tampered = MENTION.replace(b"help", b"hElp")
    refused(SignatureInvalid, events(), hdrs, tampered)


@pytest.mark.parametrize("content_type", [FORM, "text/plain", None])
def test_events_wrong_content_type_is_415(content_type: str | None) -> None:
    refused(UnsupportedMediaType, events(), headers(MENTION, content_type), MENTION)


@pytest.mark.parametrize("body", [b"not json", b'"a string"', b"{}"])
def test_events_valid_signature_over_bad_body_is_400(body: bytes) -> None:
    refused(Malformed, events(), headers(body), body)


def test_block_actions_interaction() -> None:
    endpoint = SlackInteractionsEndpoint([SECRET])
    delivery = endpoint.receive(headers(INTERACTION, FORM), INTERACTION, NOW)
    assert (delivery.provider, delivery.type) == ("slack", "block_actions")
    assert endpoint.path == "slack/interactions"


def test_derived_id_is_stable_for_the_same_request_and_new_when_resigned() -> None:
    endpoint = SlackInteractionsEndpoint([SECRET])
    hdrs = headers(INTERACTION, FORM)
    first = endpoint.receive(hdrs, INTERACTION, NOW).delivery_id
    again = endpoint.receive(dict(hdrs), INTERACTION, NOW + 5).delivery_id
    resigned_headers = headers(INTERACTION, FORM, timestamp=NOW + 1)
    resigned = endpoint.receive(resigned_headers, INTERACTION, NOW + 1).delivery_id
    expected = hashlib.sha256(f"{int(NOW)}:{hdrs['x-slack-signature']}".encode()).hexdigest()
    assert first == again == "sig-" + expected[:40]
    assert resigned != first
    assert len(first) == 44


@pytest.mark.parametrize("body", [b"other=1", b"payload=nope", b"payload=%7B%7D"])
def test_interaction_without_usable_payload_is_400(body: bytes) -> None:
    refused(Malformed, SlackInteractionsEndpoint([SECRET]), headers(body, FORM), body)


def test_interaction_refuses_json_content_type() -> None:
    endpoint = SlackInteractionsEndpoint([SECRET])
    refused(UnsupportedMediaType, endpoint, headers(INTERACTION, JSON), INTERACTION)


def test_interaction_wrong_secret_and_tampering_are_refused() -> None:
    endpoint = SlackInteractionsEndpoint([SECRET])
    refused(SignatureInvalid, endpoint, headers(INTERACTION, FORM, secret=OTHER), INTERACTION)
    tampered = INTERACTION.replace(b"ack", b"acc")
    refused(SignatureInvalid, endpoint, headers(INTERACTION, FORM), tampered)


def test_incident_slash_command() -> None:
    endpoint = SlackCommandsEndpoint([SECRET, OTHER])
    delivery = endpoint.receive(headers(COMMAND, FORM, secret=OTHER), COMMAND, NOW)
    assert (delivery.provider, delivery.type) == ("slack", "/incident")
    assert delivery.delivery_id.startswith("sig-")
    assert endpoint.path == "slack/commands"


def test_command_without_command_field_is_400() -> None:
    body = b"text=open&user_id=U1"
    refused(Malformed, SlackCommandsEndpoint([SECRET]), headers(body, FORM), body)


def test_command_signature_and_media_type_are_checked() -> None:
    endpoint = SlackCommandsEndpoint([SECRET])
    refused(SignatureInvalid, endpoint, headers(COMMAND, FORM, timestamp=NOW - 301), COMMAND)
    refused(UnsupportedMediaType, endpoint, headers(COMMAND, "multipart/form-data"), COMMAND)


def test_endpoints_factory_shares_provider_and_tolerance() -> None:
    built = endpoints([SECRET], 10)
    assert [(e.provider, e.path) for e in built] == [
        ("slack", "slack/events"),
        ("slack", "slack/interactions"),
        ("slack", "slack/commands"),
    ]
    with pytest.raises(SignatureInvalid, match="tolerance is 10 s"):
        built[0].receive(headers(MENTION, timestamp=NOW - 11), MENTION, NOW)
