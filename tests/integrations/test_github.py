"""GitHub endpoint, checked against GitHub's documented test vector and hmac for other bodies."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import orjson
import pytest

from integrations.base import InboundError, Malformed, SignatureInvalid, UnsupportedMediaType
from integrations.github import GitHubEndpoint, endpoints

SECRET = "gh-secret-one"
OTHER = "gh-secret-two"
NOW = 1_700_000_000.0
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
WORKFLOW_RUN = orjson.dumps(
    {"action": "completed", "workflow_run": {"conclusion": "failure", "head_branch": "main"}}
)
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(
    signature: str | None,
    event: str | None = "workflow_run",
    content_type: str | None = "application/json",
    delivery: str | None = DELIVERY,
) -> dict[str, str]:
    candidates = {
        "content-type": content_type,
        "user-agent": "GitHub-Hookshot/abc123",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-github-hook-id": "292430182",
        "x-github-hook-installation-target-type": "repository",
        "x-github-hook-installation-target-id": "79929171",
        "x-hub-signature-256": signature,
    }
    return {name: value for name, value in candidates.items() if value is not None}


def refused(
    kind: type[InboundError],
    hdrs: dict[str, str],
    body: bytes = WORKFLOW_RUN,
    secrets: tuple[str, ...] = (SECRET,),
) -> InboundError:
    with pytest.raises(kind) as caught:
        GitHubEndpoint(secrets).receive(hdrs, body, NOW)
    error = caught.value
    for secret in (SECRET, OTHER, VECTOR_SECRET):
        assert secret not in str(error)
        assert sign(body, secret)[7:] not in str(error)
    return error


def test_documented_test_vector() -> None:
    assert sign(b"Hello, World!", VECTOR_SECRET) == VECTOR_SIGNATURE
    # The vector's body is not JSON: reaching the parse step (400, not 401) proves it verified.
    with pytest.raises(Malformed):
        GitHubEndpoint([VECTOR_SECRET]).receive(headers(VECTOR_SIGNATURE), b"Hello, World!", NOW)
    with pytest.raises(SignatureInvalid):
        GitHubEndpoint([SECRET]).receive(headers(VECTOR_SIGNATURE), b"Hello, World!", NOW)


def test_valid_json_event_is_accepted() -> None:
    delivery = GitHubEndpoint([SECRET]).receive(headers(sign(WORKFLOW_RUN)), WORKFLOW_RUN, NOW)
    assert delivery.provider == "github"
    assert delivery.delivery_id == DELIVERY
    assert delivery.type == "workflow_run.completed"
    assert delivery.headers == {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/abc123",
        "x-github-event": "workflow_run",
        "x-github-delivery": DELIVERY,
        "x-github-hook-id": "292430182",
        "x-github-hook-installation-target-type": "repository",
        "x-github-hook-installation-target-id": "79929171",
    }


def test_signature_headers_are_not_kept() -> None:
    hdrs = headers(sign(WORKFLOW_RUN)) | {"x-hub-signature": "sha1=abc"}
    kept = GitHubEndpoint([SECRET]).receive(hdrs, WORKFLOW_RUN, NOW).headers
    assert "x-hub-signature-256" not in kept
    assert "x-hub-signature" not in kept


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        ("ping", {"zen": "Design for failure.", "hook_id": 1}, "ping"),
        ("push", {"ref": "refs/heads/main", "commits": []}, "push"),
        ("merge_group", {"action": "checks_requested"}, "merge_group.checks_requested"),
        ("some_future_event", {"action": 7}, "some_future_event"),
    ],
)
def test_event_types(event: str, payload: dict[str, object], expected: str) -> None:
    body = orjson.dumps(payload)
    delivery = GitHubEndpoint([SECRET]).receive(headers(sign(body), event), body, NOW)
    assert delivery.type == expected


def test_form_encoded_payload_with_action() -> None:
    payload = orjson.dumps({"action": "labeled", "label": {"name": "incident"}, "x": "a+b&c=d"})
    body = urlencode({"payload": payload.decode()}).encode()
    hdrs = headers(sign(body), "issues", "application/x-www-form-urlencoded")
    delivery = GitHubEndpoint([SECRET]).receive(hdrs, body, NOW)
    assert delivery.type == "issues.labeled"
    assert delivery.headers["content-type"] == "application/x-www-form-urlencoded"


def test_form_body_is_verified_before_decoding() -> None:
    body = urlencode({"payload": '{"action":"opened"}'}).encode()
    signature = sign(body)
    tampered = body.replace(b"opened", b"closed")
    hdrs = headers(signature, "issues", "application/x-www-form-urlencoded")
    refused(SignatureInvalid, hdrs, tampered)


@pytest.mark.parametrize(
    "body",
    [b"other=1", b"payload=not-json", b"payload=%5B1%5D", b"payload=%FF%FE"],
)
def test_malformed_form_payload_is_400(body: bytes) -> None:
    hdrs = headers(sign(body), "issues", "application/x-www-form-urlencoded")
    refused(Malformed, hdrs, body)


def test_rotation_accepts_the_second_secret() -> None:
    hdrs = headers(sign(WORKFLOW_RUN, OTHER))
    assert GitHubEndpoint([SECRET, OTHER]).receive(hdrs, WORKFLOW_RUN, NOW).delivery_id == DELIVERY


def test_wrong_secret_is_refused() -> None:
    error = refused(SignatureInvalid, headers(sign(WORKFLOW_RUN, "nope")), secrets=(SECRET, OTHER))
    assert "matches no configured secret" in error.reason


def test_missing_signature_is_refused() -> None:
    error = refused(SignatureInvalid, headers(None))
    assert error.reason.startswith("X-Hub-Signature-256 header is missing")


def test_legacy_sha1_only_is_refused_with_a_reason() -> None:
    sha1 = "sha1=" + hmac.new(SECRET.encode(), WORKFLOW_RUN, hashlib.sha1).hexdigest()
    error = refused(SignatureInvalid, headers(None) | {"x-hub-signature": sha1})
    assert "sha256" in error.reason
    assert "legacy sha1" in error.reason


def test_signature_without_prefix_is_refused() -> None:
    refused(SignatureInvalid, headers(sign(WORKFLOW_RUN)[7:]))


def test_tampered_body_is_refused() -> None:
    signature = sign(WORKFLOW_RUN)
    tampered = WORKFLOW_RUN.replace(b"failure", b"fAilure")
    refused(SignatureInvalid, headers(signature), tampered)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_wrong_or_missing_content_type_is_415(content_type: str | None) -> None:
    refused(UnsupportedMediaType, headers(sign(WORKFLOW_RUN), content_type=content_type))


def test_valid_signature_over_non_json_is_400() -> None:
    body = b"<xml/>"
    error = refused(Malformed, headers(sign(body)), body)
    assert error.status == 400


@pytest.mark.parametrize("missing", ["x-github-event", "x-github-delivery"])
def test_missing_event_or_delivery_header_is_400(missing: str) -> None:
    hdrs = headers(sign(WORKFLOW_RUN))
    del hdrs[missing]
    error = refused(Malformed, hdrs)
    assert "header is missing" in error.reason


def test_missing_event_header_with_bad_signature_is_401() -> None:
    refused(SignatureInvalid, headers(sign(WORKFLOW_RUN, "nope"), event=None))


def test_endpoints_factory() -> None:
    (endpoint,) = endpoints([SECRET], 300)
    assert (endpoint.provider, endpoint.path) == ("github", "github")
