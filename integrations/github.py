"""GitHub webhooks: `X-Hub-Signature-256` verification and event parsing.

GitHub signs no timestamp, so a captured delivery can be replayed verbatim; the
`X-GitHub-Delivery` dedup downstream is the only defence, which is why it is required here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from integrations.base import (
    Delivery,
    Endpoint,
    HmacKeys,
    Malformed,
    SignatureInvalid,
    check_media_type,
    keep_headers,
    load_object,
    parse_form,
)

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_MEDIA_TYPES = frozenset({_JSON, _FORM})
_KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-type",
    "x-github-hook-installation-target-id",
)
_PREFIX = "sha256="


class GitHubEndpoint:
    """`POST /webhooks/github`: every event type is stored; routing decides what matters."""

    provider: str = "github"
    path: str = "github"

    __slots__ = ("_keys",)

    def __init__(self, secrets: Sequence[str]) -> None:
        self._keys = HmacKeys(secrets)

    def receive(self, headers: Mapping[str, str], body: bytes, now: float) -> Delivery:
        media = check_media_type(headers, _MEDIA_TYPES, "GitHub")
        self._verify(headers, body)
        event = _required(headers, "x-github-event", "X-GitHub-Event")
        delivery_id = _required(headers, "x-github-delivery", "X-GitHub-Delivery")
        payload = load_object(body) if media == _JSON else _form_payload(body)
        action = payload.get("action")
        return Delivery(
            provider="github",
            delivery_id=delivery_id,
            type=f"{event}.{action}" if isinstance(action, str) and action else event,
            headers=keep_headers(headers, _KEPT_HEADERS),
        )

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        header = headers.get("x-hub-signature-256")
        if not header:
            if headers.get("x-hub-signature"):
                raise SignatureInvalid(
                    "only the legacy sha1 X-Hub-Signature was sent; X-Hub-Signature-256 "
                    "(sha256) is required (set a secret on the webhook or upgrade GHES)"
                )
            raise SignatureInvalid(
                "X-Hub-Signature-256 header is missing (is a secret set on the webhook?)"
            )
        if not header.startswith(_PREFIX):
            raise SignatureInvalid("X-Hub-Signature-256 must look like sha256=<hex>")
        # The signature covers the raw bytes, form encoding included: verify before decoding.
        if not self._keys.matches((header[len(_PREFIX) :],), body):
            raise SignatureInvalid(
                "X-Hub-Signature-256 matches no configured secret "
                "(check HUB_GITHUB_WEBHOOK_SECRETS against the webhook's secret)"
            )


def _required(headers: Mapping[str, str], name: str, display: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise Malformed(f"{display} header is missing")
    return value


def _form_payload(body: bytes) -> dict[str, object]:
    """A form-encoded delivery carries the same JSON in its `payload` field."""
    payload = parse_form(body).get("payload")
    if payload is None:
        raise Malformed("form body has no payload field")
    return load_object(payload, "payload field")


def endpoints(secrets: Sequence[str], tolerance: int = 300) -> list[Endpoint]:
    # `tolerance` keeps the registry's factories uniform: GitHub signs no timestamp to check.
    return [GitHubEndpoint(secrets)]
