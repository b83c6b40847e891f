"""Property tests for the webhook verifiers and parsers in integrations/.

Every mounted endpoint is fed random bodies (any bytes, invalid UTF-8, other encodings, deep
nesting, form where JSON is expected and the reverse), random and malformed signature headers,
timestamps (negative, huge, non-numeric, non-ASCII digits) and header-name case variations.
The contract (integrations/base.py `Endpoint`) these check:

- `receive` returns a `Delivery` or raises `InboundError`; nothing else escapes.
- A request not signed with a configured secret never verifies: a random, malformed,
  truncated or altered signature, another secret, or a signature made for other bytes or
  another timestamp is 401 (or 415 for a content type the provider never sends), never a
  `Delivery` and never a 400, since nothing is parsed before the signature is proven.
- A validly signed request is a `Delivery` keyed by a non-empty delivery id (Slack's
  `url_verification` carries its challenge instead), or a 400: never a 401, never a crash,
  and the same request always maps to the same delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from integrations.base import (
    Delivery,
    InboundError,
    Malformed,
    SignatureInvalid,
    parse_form,
)
from integrations.payloads import decode
from integrations.registry import build_endpoints
from integrations.stripe import parse_signature_header

pytestmark = pytest.mark.fuzz

# Two secrets per provider: a rotation, where either one must verify.
SECRETS = {
    "stripe": ["whsec_fuzz_current_0123456789", "whsec_fuzz_previous_abcdef"],
    "github": ["gh-fuzz-secret", "gh-fuzz-secret-old"],
    "slack": ["slack-fuzz-signing-secret", "slack-fuzz-signing-secret-2"],
}
TOLERANCE = 300
NOW = 1_800_000_000
ENDPOINTS = build_endpoints(SECRETS, TOLERANCE)
PATHS = sorted(ENDPOINTS)
TIMESTAMPED = [p for p in PATHS if not p.startswith("github")]  # GitHub signs no timestamp
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# What each endpoint accepts; GitHub sends either.
MEDIA = {
    "stripe": (JSON,),
    "github": (JSON, FORM),
    "slack/events": (JSON,),
    "slack/interactions": (FORM,),
    "slack/commands": (FORM,),
}


def provider_of(path: str) -> str:
    return path.split("/", maxsplit=1)[0]


# -- signing, as each provider does it ------------------------------------------------------


def _hex(secret: str, *parts: bytes) -> str:
    return hmac.new(secret.encode(), b"".join(parts), hashlib.sha256).hexdigest()


def sign(path: str, body: bytes, secret: str, timestamp: str) -> dict[str, str]:
    """The signature headers `path`'s sender would add (no content type)."""
    provider = provider_of(path)
    if provider == "stripe":
        return {
            "stripe-signature": f"t={timestamp},v1={_hex(secret, timestamp.encode(), b'.', body)}"
        }
    if provider == "github":
        return {"x-hub-signature-256": "sha256=" + _hex(secret, body)}
    return {
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": "v0=" + _hex(secret, f"v0:{timestamp}:".encode(), body),
    }


def configured(secret: str, provider: str) -> bool:
    """Would HMAC treat `secret` as one of `provider`'s keys?

    HMAC pads keys with zero bytes to its block size, so `k` and `k + "\\0"` are the same key:
    a property of HMAC itself, not something an attacker without the secret can use."""
    return any(secret.encode().rstrip(b"\0") == s.encode() for s in SECRETS[provider])


def receive(path: str, headers: dict[str, str], body: bytes, now: float = NOW) -> Delivery:
    """Call the endpoint; anything but a Delivery or an InboundError fails the test."""
    try:
        return ENDPOINTS[path].receive(headers, body, now)
    except InboundError:
        raise
    except Exception as exc:  # pragma: no cover - this is the failure being hunted
        pytest.fail(f"{path}: receive raised {type(exc).__name__}: {exc!r}")


def refusal(path: str, headers: dict[str, str], body: bytes, now: float = NOW) -> InboundError:
    """The InboundError `receive` raises; fails if the request is accepted."""
    try:
        delivery = receive(path, headers, body, now)
    except InboundError as exc:
        return exc
    pytest.fail(f"{path}: an unsigned or mis-signed request verified: {delivery!r}")


# -- strategies -----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
short_text = st.text(max_size=40)
# What a field named like a key might hold: usually a string, sometimes anything at all.
key_values = short_text | st.sampled_from(["", " ", "\x00", "evt_1", "/incident"]) | json_values


def _obj(required: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with each of `required` present or not, plus random extra members."""
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional=required),
        st.dictionaries(st.text(max_size=10), json_values, max_size=3),
    )


# Objects shaped like what each provider sends, so the parsers get past their first check.
plausible = {
    "stripe": _obj(
        {"id": key_values, "type": key_values, "object": st.just("event"), "data": json_values}
    ),
    "github": _obj({"action": key_values, "zen": short_text, "hook_id": st.integers()}),
    "slack/events": _obj(
        {
            "type": st.sampled_from(["url_verification", "event_callback", "app_rate_limited"])
            | key_values,
            "challenge": key_values,
            "event_id": key_values,
            "event": _obj({"type": key_values}) | json_values,
        }
    ),
    "slack/interactions": _obj(
        {"type": st.sampled_from(["block_actions", "shortcut"]) | key_values}
    ),
    "slack/commands": _obj(
        {
            "command": st.just("/incident") | key_values,
            "text": key_values,
            "response_url": short_text,
        }
    ),
}

ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "shift_jis"]


@st.composite
def json_bytes(draw: st.DrawFn, value: st.SearchStrategy[Any]) -> bytes:
    """A JSON document in some encoding: UTF-8 as senders do, or one they never use."""
    text = json.dumps(draw(value), ensure_ascii=draw(st.booleans()))
    encoding = draw(st.sampled_from(ENCODINGS))
    return text.encode(encoding, errors=draw(st.sampled_from(["replace", "ignore"])))


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """JSON nested far past any parser's depth limit, closed or left open."""
    depth = draw(st.integers(min_value=1, max_value=50_000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"type":[', b"]}")]))
    tail = closer * depth if draw(st.booleans()) else b""
    return opener * depth + b"1" + tail


def as_form(fields: dict[str, Any]) -> bytes:
    return urlencode(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    ).encode()


@st.composite
def form_bytes(draw: st.DrawFn, value: st.SearchStrategy[Any]) -> bytes:
    """A form body: fields as Slack commands send them, or `payload=<json>` as buttons do."""
    obj = draw(value)
    choice = draw(st.sampled_from(["fields", "payload", "nested_payload", "raw"]))
    if choice == "fields":
        return as_form(obj)
    if choice == "payload":
        return as_form({"payload": json.dumps(obj)})
    if choice == "nested_payload":
        return b"payload=" + quote(draw(nested()).decode()).encode()
    # Percent-escapes that decode to invalid UTF-8, lone '%', '+', '&&', '=': what parse_qs sees.
    return draw(
        st.lists(
            st.sampled_from(
                [b"payload=", b"%ff", b"%", b"+", b"&", b"=", b"%7B", b"command=%2Fx", b"a"]
            ),
            max_size=20,
        ).map(b"".join)
    )


def bodies(path: str) -> st.SearchStrategy[bytes]:
    shaped = plausible[path]
    return st.one_of(
        json_bytes(shaped),
        form_bytes(shaped),
        json_bytes(json_values),
        st.binary(max_size=2048),
        nested(),
        st.just(b""),
    )


any_body = st.sampled_from(PATHS).flatmap(bodies)

media_types = st.sampled_from(
    [
        JSON,
        FORM,
        "text/plain",
        "multipart/form-data",
        "application/xml",
        "application/jsonx",
        "",
        " ",
        ";",
        "application/json+x",
    ]
)


@st.composite
def content_types(draw: st.DrawFn, allowed: tuple[str, ...] | None = None) -> str:
    """A Content-Type value: one of `allowed` in any case with parameters, or anything."""
    media = draw(st.sampled_from(allowed) if allowed else media_types | short_text)
    media = draw(st.sampled_from([str.lower, str.upper, str.title, str.swapcase]))(media)
    params = draw(st.sampled_from(["", "; charset=utf-8", ";charset=UTF-16", "; boundary=x", " ;"]))
    return f"{draw(st.sampled_from(['', ' ']))}{media}{params}"


# Timestamps a sender would never sign, in the text a header carries.
bad_timestamps = st.one_of(
    st.integers(max_value=-1).map(str),
    st.integers(min_value=10**11, max_value=10**400).map(str),
    st.integers(min_value=0, max_value=NOW - TOLERANCE - 1).map(str),
    st.integers(min_value=NOW + TOLERANCE + 1, max_value=10**20).map(str),
    st.floats().map(str),
    st.sampled_from(
        [
            "",
            " ",
            f" {NOW}",
            f"{NOW} ",
            f"+{NOW}",
            f"{NOW}.0",
            f"{NOW:_}",
            f"{NOW:e}",
            hex(NOW),
            "١٨٠٠٠٠٠٠٠٠",
            "²",
            "NaN",
            "inf",
            "\x00",
        ]
    ),
    short_text,
)
good_timestamps = st.integers(min_value=NOW - TOLERANCE, max_value=NOW + TOLERANCE).map(str)
timestamps = good_timestamps | bad_timestamps
hexes = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=70)
# Header text as a server hands it over: latin-1 decoded bytes, or any text at all.
header_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=80) | short_text
# What follows `sha256=`, `v0=` or `v1=`: hex of any length and case, or any header text,
# non-ASCII included (hmac.compare_digest raises on that).
digests = (
    hexes
    | header_text
    | st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0xFF), min_size=1)
)


@st.composite
def stripe_headers(draw: st.DrawFn) -> str:
    items = draw(
        st.lists(
            st.one_of(
                timestamps.map(lambda t: f"t={t}"),
                digests.map(lambda h: f"v1={h}"),
                digests.map(lambda h: f"v0={h}"),
                st.tuples(st.sampled_from(["V1", " v1", "v2", "t ", "T", "", "v1 "]), hexes).map(
                    "=".join
                ),
                header_text,
            ),
            max_size=6,
        )
    )
    return draw(st.sampled_from([",", ", ", ";"])).join(items)


signature_values = st.one_of(
    stripe_headers(),
    digests.map(lambda h: f"sha256={h}"),
    hexes.map(lambda h: f"sha1={h}"),
    digests.map(lambda h: f"v0={h}"),
    hexes.map(lambda h: f"V0={h}"),
    hexes,
    header_text,
)

# Lower-case names are the contract (ASGI servers lower-case them); other spellings must be
# as good as absent, never a way around a check.
SIGNATURE_NAMES = [
    "stripe-signature",
    "Stripe-Signature",
    "x-hub-signature-256",
    "X-Hub-Signature-256",
    "x-hub-signature",
    "x-slack-signature",
    "X-Slack-Signature",
]
TIMESTAMP_NAMES = ["x-slack-request-timestamp", "X-Slack-Request-Timestamp"]
OTHER_NAMES = [
    "x-github-event",
    "x-github-delivery",
    "Content-Type",
    "CONTENT-TYPE",
    "x-slack-retry-num",
    "user-agent",
    "content-length",
]


# The signature header each endpoint reads, under its contract (lower-case) name.
SIGNATURE_HEADER = {
    "stripe": "stripe-signature",
    "github": "x-hub-signature-256",
    "slack": "x-slack-signature",
}


@st.composite
def forged_signature(draw: st.DrawFn, provider: str) -> dict[str, str]:
    """A signature header right in every way but the digest: the comparison is reached."""
    digest = draw(digests)
    if provider == "stripe":
        extra = draw(st.lists(st.sampled_from(["v0=00", "v1=", "x=y", ""]), max_size=2))
        return {
            "stripe-signature": ",".join([f"t={draw(good_timestamps)}", f"v1={digest}", *extra])
        }
    if provider == "github":
        return {"x-hub-signature-256": f"sha256={digest}"}
    return {"x-slack-request-timestamp": draw(good_timestamps), "x-slack-signature": f"v0={digest}"}


@st.composite
def random_headers(draw: st.DrawFn, path: str) -> dict[str, str]:
    """Headers a forger might send: mostly right in all the endpoint checks before the
    signature (content type, timestamp, the header's name and prefix), so that the digest
    comparison itself is fuzzed; otherwise wrong anywhere."""
    headers = draw(st.dictionaries(st.sampled_from(SIGNATURE_NAMES), signature_values, max_size=4))
    headers |= draw(st.dictionaries(st.sampled_from(TIMESTAMP_NAMES), timestamps, max_size=2))
    headers |= draw(st.dictionaries(st.sampled_from(OTHER_NAMES), header_text, max_size=4))
    headers |= draw(st.dictionaries(header_text, header_text, max_size=2))
    if draw(st.integers(0, 3)):
        headers["content-type"] = draw(content_types(MEDIA[path]))
    elif draw(st.booleans()):
        headers["content-type"] = draw(content_types())
    if draw(st.integers(0, 3)):
        headers |= draw(forged_signature(provider_of(path)))
    return headers


@dataclass(frozen=True)
class Signed:
    """A request signed the way its sender signs it, and what went into the signature."""

    path: str
    body: bytes
    timestamp: str
    headers: dict[str, str]


@st.composite
def signed_requests(
    draw: st.DrawFn, path: str, secret: str | None = None, body: bytes | None = None
) -> Signed:
    provider = provider_of(path)
    secret = secret if secret is not None else draw(st.sampled_from(SECRETS[provider]))
    body = body if body is not None else draw(bodies(path))
    timestamp = draw(good_timestamps)
    headers = {
        "content-type": draw(content_types(MEDIA[path])),
        **sign(path, body, secret, timestamp),
    }
    if provider == "github":
        # GitHub's own headers are required, but an empty or odd value is a 400, not a 401.
        headers["x-github-event"] = draw(
            st.sampled_from(["push", "ping", "workflow_run"]) | header_text
        )
        headers["x-github-delivery"] = draw(st.uuids().map(str) | header_text)
    if draw(st.booleans()):
        headers["user-agent"] = draw(header_text)
    return Signed(path, body, timestamp, headers)


# -- properties: what is not signed with a configured secret never verifies ----------------


@given(data=st.data())
def test_random_requests_are_refused_without_crashing(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(PATHS), "path")
    headers = data.draw(random_headers(path), "headers")
    body = data.draw(any_body | bodies(path), "body")
    exc = refusal(path, headers, body)
    # Refused before anything is parsed: a 400 here would mean the body was read unverified.
    assert exc.status in (401, 415), (exc.status, exc.reason)
    assert exc.reason


@given(data=st.data())
def test_another_secret_never_verifies(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(PATHS), "path")
    secret = data.draw(st.text(min_size=1, max_size=80), "secret")
    assume(not configured(secret, provider_of(path)))
    request = data.draw(signed_requests(path, secret=secret), "request")
    exc = refusal(path, request.headers, request.body)
    assert exc.status == 401, (exc.status, exc.reason)


@given(data=st.data())
def test_a_signature_for_one_body_never_verifies_another(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(PATHS), "path")
    request = data.draw(signed_requests(path), "request")
    body = request.body
    other = data.draw(
        st.one_of(
            bodies(path),
            st.binary(min_size=1, max_size=8).map(lambda b: body + b),  # appended
            st.integers(0, max(len(body) - 1, 0)).map(lambda n: body[:n]),  # truncated
            st.tuples(st.integers(0, max(len(body) - 1, 0)), st.integers(1, 255)).map(
                lambda t: (
                    body[: t[0]] + bytes([(body[t[0]] ^ t[1]) if body else t[1]]) + body[t[0] + 1 :]
                )
            ),  # one byte flipped
        ),
        "tampered body",
    )
    assume(other != body)
    exc = refusal(path, request.headers, other)
    assert exc.status == 401, (exc.status, exc.reason)


@given(data=st.data())
def test_a_truncated_extended_or_altered_signature_never_verifies(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(PATHS), "path")
    request = data.draw(signed_requests(path), "request")
    name = SIGNATURE_HEADER[provider_of(path)]
    prefix, digest = request.headers[name][:-64], request.headers[name][-64:]
    at = data.draw(st.integers(0, 63), "position")
    forged = data.draw(
        st.sampled_from(
            [
                digest[:at],  # truncated: a prefix of the right digest
                digest + "0123456789abcdef"[at % 16],  # extended
                digest[:at] + "0123456789abcdef"[(int(digest[at], 16) + 1) % 16] + digest[at + 1 :],
            ]
        ),
        "digest",
    )
    exc = refusal(path, {**request.headers, name: prefix + forged}, request.body)
    assert exc.status == 401, (exc.status, exc.reason)


@given(data=st.data())
def test_a_signature_for_one_timestamp_never_verifies_another(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(TIMESTAMPED), "path")
    request = data.draw(signed_requests(path), "request")
    timestamp = data.draw(timestamps, "timestamp")
    assume(timestamp != request.timestamp)
    headers = dict(request.headers)
    if provider_of(path) == "stripe":
        headers["stripe-signature"] = headers["stripe-signature"].replace(
            f"t={request.timestamp},", f"t={timestamp},", 1
        )
    else:
        headers["x-slack-request-timestamp"] = timestamp
    exc = refusal(path, headers, request.body)
    assert exc.status == 401, (exc.status, exc.reason)


@given(data=st.data())
def test_stale_or_odd_timestamps_are_401_even_when_signed(data: st.DataObject) -> None:
    # Signed with the real secret, over the timestamp exactly as sent: only the timestamp is bad.
    path = data.draw(st.sampled_from(TIMESTAMPED), "path")
    timestamp = data.draw(bad_timestamps, "timestamp")
    body = data.draw(bodies(path), "body")
    secret = data.draw(st.sampled_from(SECRETS[provider_of(path)]), "secret")
    headers = {"content-type": MEDIA[path][0], **sign(path, body, secret, timestamp)}
    exc = refusal(path, headers, body)
    assert exc.status == 401, (exc.status, exc.reason)


@given(data=st.data())
def test_header_names_in_another_case_are_not_seen(data: st.DataObject) -> None:
    # The contract is lower-case names (the ASGI ingress passes them so); a signature under
    # any other spelling is absent, never trusted by a second route.
    path = data.draw(st.sampled_from(PATHS), "path")
    request = data.draw(signed_requests(path), "request")
    headers = {}
    for name, value in request.headers.items():
        spelling = name
        if name.startswith(("x-hub", "x-slack", "stripe")):
            spelling = data.draw(st.sampled_from([name.upper(), name.title(), name.capitalize()]))
        headers[spelling] = value
    exc = refusal(path, headers, request.body)
    assert exc.status == 401, (exc.status, exc.reason)


@given(header=stripe_headers(), body=any_body)
def test_stripe_accepts_only_v1(header: str, body: bytes) -> None:
    # A valid signature offered as v0 (or any scheme but v1) next to garbage v1s is refused.
    timestamp = str(NOW)
    valid = _hex(SECRETS["stripe"][0], timestamp.encode(), b".", body)
    scheme = header.replace("v1=", "v0=") + f",t={timestamp},v0={valid},V1={valid}, v1 ={valid}"
    exc = refusal(
        "stripe", {"content-type": JSON, "stripe-signature": f"t={timestamp}," + scheme}, body
    )
    assert exc.status == 401


# -- properties: what is signed with a configured secret is a Delivery or a 400 ------------


@given(data=st.data())
def test_signed_requests_are_a_delivery_or_a_400(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(PATHS), "path")
    request = data.draw(signed_requests(path), "request")
    try:
        delivery = receive(path, request.headers, request.body)
    except InboundError as exc:
        assert isinstance(exc, Malformed) and exc.status == 400, (exc.status, exc.reason)
        assert exc.reason
        return
    endpoint = ENDPOINTS[path]
    assert delivery.provider == endpoint.provider
    assert isinstance(delivery.type, str) and delivery.type
    if delivery.challenge is None:
        assert isinstance(delivery.delivery_id, str) and delivery.delivery_id
    else:
        # Only Slack's handshake is answered without being stored (or keyed).
        assert path == "slack/events" and delivery.type == "url_verification"
    # Signatures never reach the kept headers: they would be stored and shown by /admin.
    assert not {"stripe-signature", "x-hub-signature-256", "x-slack-signature"} & set(
        delivery.headers
    )
    # The same request is the same delivery: retries and duplicates collapse downstream.
    assert receive(path, request.headers, request.body) == delivery


@given(data=st.data())
def test_every_configured_secret_verifies_alike(data: st.DataObject) -> None:
    # During a rotation either secret signs: the same request is answered the same way.
    path = data.draw(st.sampled_from(PATHS), "path")
    first = data.draw(signed_requests(path, secret=SECRETS[provider_of(path)][0]), "request")
    outcomes = []
    for secret in SECRETS[provider_of(path)]:
        headers = {**first.headers, **sign(path, first.body, secret, first.timestamp)}
        try:
            outcomes.append(receive(path, headers, first.body))
        except InboundError as exc:
            assert exc.status == 400, (exc.status, exc.reason)
            outcomes.append(exc.reason)
    if provider_of(path) == "slack" and isinstance(outcomes[0], Delivery):
        # Slack's derived key includes the signature, which differs per secret.
        outcomes = [o.type if isinstance(o, Delivery) else o for o in outcomes]
    assert len(set(map(repr, outcomes))) == 1, outcomes


# -- the parsers on their own ------------------------------------------------------------------


@given(header=stripe_headers() | header_text)
def test_stripe_signature_header_parses_or_is_a_401(header: str) -> None:
    try:
        timestamp, signatures = parse_signature_header(header)
    except SignatureInvalid as exc:
        assert exc.status == 401
        return
    assert isinstance(timestamp, str) and signatures
    assert all(isinstance(s, str) for s in signatures)


@given(body=any_body)
def test_form_bodies_parse_or_are_a_400(body: bytes) -> None:
    try:
        fields = parse_form(body)
    except Malformed:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


@given(
    content_type=content_types(),
    body=any_body,
    extra=st.dictionaries(header_text, header_text, max_size=2),
)
def test_stored_payloads_decode_or_are_malformed(
    content_type: str, body: bytes, extra: dict[str, str]
) -> None:
    # What the workers run on a stored body: a dict, or Malformed (the event fails, with why).
    headers = {**extra, "content-type": content_type}
    try:
        payload = decode(headers, body)
    except Malformed:
        return
    assert isinstance(payload, dict)
