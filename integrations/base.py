"""The seam between the web edge and a provider: headers and bytes in, plain data out.

Nothing here knows about FastAPI, SQLModel or Dramatiq, so a provider can be tested as a
pure function and a fourth provider is one module plus one line in `registry.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs

import orjson


class InboundError(Exception):
    """A request the hub refuses. `status` is the HTTP answer, `reason` is safe to show."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Malformed(InboundError):
    """Verified, but not something the provider would send (400)."""

    status = 400


class SignatureInvalid(InboundError):
    """Missing or wrong signature, or a timestamp outside the tolerance (401)."""

    status = 401


class UnsupportedMediaType(InboundError):
    """A content type the provider never sends (415)."""

    status = 415


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified delivery, ready to be stored.

    `delivery_id` is the provider's stable id (or one derived from the signed request), so a
    retry of the same delivery maps to the same row. `challenge` is set only for Slack's
    `url_verification`, which is answered and never stored.
    """

    provider: str
    delivery_id: str
    type: str
    headers: dict[str, str] = field(default_factory=dict)
    challenge: str | None = None
    # Extra fields for the 2xx answer: a slash command's answer is shown to whoever typed it.
    reply: Mapping[str, object] | None = None


class Endpoint(Protocol):
    """One inbound webhook endpoint, mounted at `/webhooks/{path}`.

    `headers` has lower-case names. `receive` checks, in this order: content type (415),
    signature against every configured secret and timestamp tolerance (401), then parses
    (400). Nothing is parsed before the signature is proven.
    """

    @property
    def provider(self) -> str: ...

    @property
    def path(self) -> str: ...

    def receive(self, headers: Mapping[str, str], body: bytes, now: float) -> Delivery: ...


# Helpers shared by the provider modules. They run on every request, so anything that depends
# only on configuration is prepared once, at construction.


class HmacKeys:
    """HMAC-SHA256 keyed once per configured secret (several during a rotation)."""

    __slots__ = ("_macs",)

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets or any(not s.strip() for s in secrets):
            # An empty key would let anyone sign: refuse to build rather than accept unsigned.
            raise ValueError("every endpoint needs at least one non-empty secret")
        self._macs = tuple(hmac.new(s.encode(), digestmod=hashlib.sha256) for s in secrets)

    def matches(self, candidates: Sequence[str], *parts: bytes) -> bool:
        """True if any hex candidate equals the HMAC of `parts` under any key.

        Every key and candidate is compared, so the time taken does not tell which one matched.
        """
        found = False
        for mac in self._macs:
            h = mac.copy()
            for part in parts:
                h.update(part)
            expected = h.hexdigest()
            for candidate in candidates:
                # compare_digest raises on non-ASCII str, and a header may carry any latin-1.
                if candidate.isascii():
                    found |= hmac.compare_digest(expected, candidate)
        return found


def check_media_type(headers: Mapping[str, str], allowed: frozenset[str], who: str) -> str:
    """The lower-case media type of the request, or UnsupportedMediaType if not in `allowed`."""
    raw = headers.get("content-type")
    if raw is None:
        raise UnsupportedMediaType(
            f"Content-Type header is missing; {who} sends {_one_of(allowed)}"
        )
    media = raw.partition(";")[0].strip().lower()
    if media not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type {media[:100]!r} is not accepted; {who} sends {_one_of(allowed)}"
        )
    return media


def _one_of(allowed: frozenset[str]) -> str:
    return " or ".join(sorted(allowed))


# Seconds since 1970 reach 10**12 in the year 33658; milliseconds passed it in 2001.
_MILLISECONDS = 10**12


def check_timestamp(timestamp: int, now: float, tolerance: int, who: str = "the sender") -> None:
    """Refuse a signed timestamp more than `tolerance` seconds away from `now`, either way."""
    age = now - timestamp
    if timestamp >= _MILLISECONDS and -age > tolerance:
        # A sender (or a test harness) putting milliseconds where seconds belong would
        # otherwise hear that it is 50,000 years in the future and to check the clock.
        raise SignatureInvalid(f"timestamp looks like milliseconds; {who} signs seconds")
    if age > tolerance:
        raise SignatureInvalid(
            f"timestamp is {math.ceil(age)} s old; tolerance is {tolerance} s "
            "(a replayed or long-delayed request, or a server clock that is off)"
        )
    if -age > tolerance:
        raise SignatureInvalid(
            f"timestamp is {math.ceil(-age)} s in the future; tolerance is {tolerance} s "
            "(check this server's clock)"
        )


def parse_int(text: str) -> int | None:
    """A plain run of ASCII digits as int; int() alone would also take ' 1', '+1' and '1_0'."""
    if text.isascii() and text.isdigit() and len(text) <= 20:
        return int(text)
    return None


def keep_headers(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    return {name: value for name in names if (value := headers.get(name)) is not None}


def load_object(raw: bytes | str, what: str = "body") -> dict[str, object]:
    """Parse JSON that must be an object, or raise Malformed naming `what`."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Malformed(f"{what} is not {_json_or_utf8(raw)}") from None
    if not isinstance(value, dict):
        raise Malformed(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _json_or_utf8(raw: bytes | str) -> str:
    """What a body orjson refused is not: UTF-8 (checked only once it failed), else JSON.
    A form field is text already: parse_form refused its bytes if they were not UTF-8."""
    if isinstance(raw, bytes):
        try:
            raw.decode()
        except UnicodeDecodeError:
            return "valid UTF-8"
    return "valid JSON"


def parse_form(body: bytes) -> dict[str, str]:
    """Decode an application/x-www-form-urlencoded body; the first value of each field wins."""
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise Malformed("form body is not valid UTF-8") from None
    return {name: values[0] for name, values in fields.items()}


def string_field(obj: Mapping[str, object], name: str, what: str) -> str:
    """A non-empty string member of `obj`, or Malformed naming it."""
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{what} has no string {name!r}")
    return value
