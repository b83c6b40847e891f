"""Stripe endpoint, signed with the Stripe SDK's own helper."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest
import stripe

from integrations.base import InboundError, Malformed, SignatureInvalid, UnsupportedMediaType
from integrations.stripe import StripeEndpoint, endpoints

SECRET = "whsec_first_secret_0123456789"
OTHER = "whsec_second_secret_9876543210"
NOW = 1_700_000_000.0
EVENT = {
    "id": "evt_1Abc",
    "object": "event",
    "type": "charge.dispute.created",
    "data": {"object": {"id": "dp_1", "amount": 1000}},
}
BODY = orjson.dumps(EVENT)


def sign(body: bytes, secret: str = SECRET, timestamp: float = NOW) -> str:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(timestamp)
    )
    return str(header)


def v1(body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def headers(signature: str | None, content_type: str | None = "application/json") -> dict[str, str]:
    out = {"user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
    if content_type is not None:
        out["content-type"] = content_type
    if signature is not None:
        out["stripe-signature"] = signature
    return out


def refused(
    kind: type[InboundError],
    hdrs: dict[str, str],
    body: bytes = BODY,
    secrets: tuple[str, ...] = (SECRET,),
) -> InboundError:
    with pytest.raises(kind) as caught:
        StripeEndpoint(secrets).receive(hdrs, body, NOW)
    error = caught.value
    for secret in (SECRET, OTHER):
        assert secret not in str(error)
        assert v1(body, secret, int(NOW)) not in str(error)
    assert error.status == {Malformed: 400, SignatureInvalid: 401, UnsupportedMediaType: 415}[kind]
    return error


def test_valid_event_is_accepted() -> None:
    delivery = StripeEndpoint([SECRET]).receive(headers(sign(BODY)), BODY, NOW)
    assert delivery.provider == "stripe"
    assert delivery.delivery_id == "evt_1Abc"
    assert delivery.type == "charge.dispute.created"
    assert delivery.challenge is None
    assert delivery.headers == {
        "content-type": "application/json",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


def test_media_type_parameters_and_case_are_ignored() -> None:
    hdrs = headers(sign(BODY), "Application/JSON; charset=utf-8")
    assert StripeEndpoint([SECRET]).receive(hdrs, BODY, NOW).delivery_id == "evt_1Abc"


def test_rotation_accepts_the_second_secret() -> None:
    delivery = StripeEndpoint([SECRET, OTHER]).receive(headers(sign(BODY, OTHER)), BODY, NOW)
    assert delivery.type == "charge.dispute.created"


def test_wrong_secret_is_refused() -> None:
    error = refused(SignatureInvalid, headers(sign(BODY, "whsec_wrong")), secrets=(SECRET, OTHER))
    assert "no v1 signature matches any configured secret" in error.reason


def test_missing_header_is_refused() -> None:
    assert refused(SignatureInvalid, headers(None)).reason.startswith(
        "Stripe-Signature header is missing"
    )


@pytest.mark.parametrize(
    "header", ["garbage", "v1=abc", "t=,v1=abc", "t=12a,v1=abc", "t=+1,v1=abc", "t=1_7,v1=abc"]
)
def test_unparsable_header_or_timestamp_is_refused(header: str) -> None:
    refused(SignatureInvalid, headers(header))


def test_stale_timestamp_is_refused() -> None:
    error = refused(SignatureInvalid, headers(sign(BODY, timestamp=NOW - 412)))
    assert "timestamp is 412 s old; tolerance is 300 s" in error.reason


def test_future_timestamp_is_refused() -> None:
    error = refused(SignatureInvalid, headers(sign(BODY, timestamp=NOW + 301)))
    assert "timestamp is 301 s in the future; tolerance is 300 s" in error.reason


def test_timestamp_just_inside_tolerance_is_accepted() -> None:
    endpoint = StripeEndpoint([SECRET])
    assert endpoint.receive(headers(sign(BODY, timestamp=NOW - 300)), BODY, NOW)
    assert endpoint.receive(headers(sign(BODY, timestamp=NOW + 300)), BODY, NOW)


def test_tolerance_is_configurable() -> None:
    with pytest.raises(SignatureInvalid, match="20 s old; tolerance is 10 s"):
        StripeEndpoint([SECRET], tolerance=10).receive(
            headers(sign(BODY, timestamp=NOW - 20)), BODY, NOW
        )


def test_one_matching_v1_among_several_is_accepted() -> None:
    t = int(NOW)
    header = f"t={t},v1={'0' * 64},v1={v1(BODY, SECRET, t)},v1={v1(BODY, 'whsec_old', t)}"
    assert StripeEndpoint([SECRET]).receive(headers(header), BODY, NOW).delivery_id == "evt_1Abc"


def test_only_v0_is_refused() -> None:
    t = int(NOW)
    error = refused(SignatureInvalid, headers(f"t={t},v0={v1(BODY, SECRET, t)}"))
    assert "no v1 signature" in error.reason


def test_v0_matching_does_not_rescue_a_wrong_v1() -> None:
    t = int(NOW)
    good = v1(BODY, SECRET, t)
    refused(SignatureInvalid, headers(f"t={t},v1={'0' * 64},v0={good}"))


def test_tampered_body_is_refused() -> None:
    signature = sign(BODY)
    tampered = BODY.replace(b"1000", b"9000")
    assert tampered != BODY
    refused(SignatureInvalid, headers(signature), tampered)


def test_non_ascii_signature_is_refused_not_crashed() -> None:
    refused(SignatureInvalid, headers(f"t={int(NOW)},v1=\u00e9\u00e9"))


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_or_missing_content_type_is_415(content_type: str | None) -> None:
    refused(UnsupportedMediaType, headers(sign(BODY), content_type))


def test_content_type_is_checked_before_the_signature() -> None:
    refused(UnsupportedMediaType, headers(None, "text/plain"))


def test_signature_is_checked_before_parsing() -> None:
    refused(SignatureInvalid, headers(sign(BODY, "whsec_wrong")), b"not json")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "charge.succeeded"}',
        b'{"id": "evt_1"}',
        b'{"id": 5, "type": "charge.succeeded"}',
    ],
)
def test_validly_signed_but_malformed_body_is_400(body: bytes) -> None:
    refused(Malformed, headers(sign(body)), body)


def test_thin_event_is_stored_like_any_other() -> None:
    thin = orjson.dumps(
        {
            "id": "evt_test_65R9Ijk8",
            "object": "v2.core.event",
            "type": "v1.billing.meter.error_report_triggered",
            "related_object": {"id": "mtr_1", "type": "billing.meter"},
        }
    )
    delivery = StripeEndpoint([SECRET]).receive(headers(sign(thin)), thin, NOW)
    assert (delivery.delivery_id, delivery.type) == (
        "evt_test_65R9Ijk8",
        "v1.billing.meter.error_report_triggered",
    )


def test_endpoints_factory() -> None:
    (endpoint,) = endpoints([SECRET], 300)
    assert (endpoint.provider, endpoint.path) == ("stripe", "stripe")


@pytest.mark.parametrize("secrets", [[], [""], [SECRET, "  "]])
def test_empty_secrets_are_refused_at_construction(secrets: list[str]) -> None:
    with pytest.raises(ValueError):
        StripeEndpoint(secrets)
