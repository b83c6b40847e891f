"""The webhook endpoints in the OpenAPI document, though FastAPI never routes them.

`/webhooks/...` is answered by the plain ASGI ingress in front of FastAPI (hub/ingest/asgi.py),
so no FastAPI route exists to document them. These path items are written by hand and merged
into the generated document (`HubAPI.openapi` in hub/web/app.py): no dead route, nothing that
could answer in the ingress's place. One entry per endpoint path of integrations/registry.py;
tests/test_docs_offline.py checks that the two lists agree."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, Field

from hub.web.schemas import ErrorOut
from integrations.registry import ENDPOINT_FACTORIES

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
TAG = "webhooks"
TAG_DESCRIPTION = (
    "What Stripe, GitHub and Slack POST. No bearer token: the provider's signature over the "
    "raw body is the authentication. A provider is mounted only when its signing secret is "
    "set (`HUB_STRIPE_WEBHOOK_SECRETS`, `HUB_GITHUB_WEBHOOK_SECRETS`, "
    "`HUB_SLACK_SIGNING_SECRETS`); without one its paths answer 404. Answered by the ingress in "
    'front of the API, so "Try it out" sends unsigned requests (401).'
)


class WebhookAccepted(BaseModel):
    """The delivery is committed: a 2xx is never sent before the event is stored."""

    event_id: str = Field(description="`evt_` + a ULID, as in `GET /admin/events/{event_id}`.")
    duplicate: bool = Field(
        description="`true` when this delivery was stored before (a retry or a redelivery): "
        "the same `event_id`, nothing stored twice."
    )


class SlackChallenge(BaseModel):
    """Slack's `url_verification` handshake, answered at once and never stored."""

    challenge: str = Field(description="The `challenge` of the request, echoed.")


class SlashCommandAccepted(WebhookAccepted):
    """A stored slash command; Slack shows `text` to whoever typed the command."""

    response_type: Literal["ephemeral"]
    text: str = Field(description="`Working on \\`/incident ...\\`…`")


MODELS: tuple[type[BaseModel], ...] = (
    ErrorOut,
    WebhookAccepted,
    SlackChallenge,
    SlashCommandAccepted,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _header(name: str, description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


def _error(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": _ref(ErrorOut)}},
    }
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return answer


def _answers(accepted: dict[str, Any], secret: str, media: str) -> dict[str, Any]:
    """Every answer an endpoint gives; `accepted` is its 200."""
    return {
        "200": accepted,
        "400": _error("Verified, but not what the provider sends (a field or header is missing)"),
        "401": _error("The signature is missing or matches no secret, or its timestamp is stale"),
        "404": _error(f"The provider is not mounted: `{secret}` is not set"),
        "405": _error("Any method but POST"),
        "413": _error("The body is over `HUB_MAX_BODY_BYTES` (default 25 MiB, GitHub's own cap)"),
        "415": _error(f"A Content-Type the provider never sends (it sends {media})"),
        "429": _error(
            "This client address is flooding the hub with requests that fail verification "
            "(`HUB_UNVERIFIED_RATE_LIMIT`). A verified delivery is never limited.",
            {
                "Retry-After": "Seconds until the limit lets a request through",
                "X-RateLimit-Limit": "Requests the window allows",
                "X-RateLimit-Remaining": "Requests left in the window",
                "X-RateLimit-Reset": "Unix time the window frees up",
            },
        ),
        "503": _error(
            "The event store cannot take the event now; nothing was stored, the sender retries",
            {"Retry-After": "Seconds to wait before retrying"},
        ),
    }


def _stored(model: type[BaseModel] = WebhookAccepted) -> dict[str, Any]:
    return {
        "description": "Stored (or stored before: `duplicate`)",
        "content": {JSON: {"schema": _ref(model)}},
    }


def _body(content: dict[str, dict[str, Any]], description: str) -> dict[str, Any]:
    return {"required": True, "description": description, "content": content}


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STRING = {"type": "string"}
_PAYLOAD_FORM = {
    FORM: {"schema": _object(["payload"], payload={"type": "string", "description": "JSON object"})}
}
_SLACK_HEADERS = [
    _header("X-Slack-Signature", "`v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}`"),
    _header(
        "X-Slack-Request-Timestamp",
        "Unix seconds; refused more than `HUB_SIGNATURE_TOLERANCE_S` (300) away from now",
    ),
]
_SLACK_SETTING = "HUB_SLACK_SIGNING_SECRETS"


def _operation(
    provider: str, summary: str, description: str, **parts: Any
) -> tuple[str, dict[str, Any]]:
    operation = {
        "tags": [TAG],
        "summary": summary,
        "description": description,
        "operationId": f"webhook_{summary.lower().replace(' ', '_')}",
        "security": [],
        **parts,
    }
    return provider, {"post": operation}


# path -> (provider, path item). Every path of every provider in integrations/registry.py.
PATHS: dict[str, tuple[str, dict[str, Any]]] = {
    "/webhooks/stripe": _operation(
        "stripe",
        "Stripe events",
        "Snapshot and thin events alike. Deduplicated on the event's `id`.",
        parameters=[
            _header(
                "Stripe-Signature",
                "`t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body>[,v1=...]`; any `v1` may "
                "match, `v0` is ignored; `t` within `HUB_SIGNATURE_TOLERANCE_S` (300) of now",
            )
        ],
        requestBody=_body(
            {JSON: {"schema": _object(["id", "type"], id=_STRING, type=_STRING)}},
            "A Stripe event, stored byte for byte",
        ),
        responses=_answers(_stored(), "HUB_STRIPE_WEBHOOK_SECRETS", JSON),
    ),
    "/webhooks/github": _operation(
        "github",
        "GitHub events",
        "Every event type is stored; the type is `X-GitHub-Event` and the payload's `action` "
        "(`workflow_run.completed`). Deduplicated on `X-GitHub-Delivery`.",
        parameters=[
            _header("X-Hub-Signature-256", "`sha256=` + hex HMAC-SHA256 of the raw body"),
            _header("X-GitHub-Event", "The event name, e.g. `workflow_run`"),
            _header("X-GitHub-Delivery", "The delivery's GUID, the same on a redelivery"),
        ],
        requestBody=_body(
            {JSON: {"schema": {"type": "object"}}, **_PAYLOAD_FORM},
            "The event payload, as JSON or as the form field `payload`",
        ),
        responses=_answers(_stored(), "HUB_GITHUB_WEBHOOK_SECRETS", f"{JSON} or {FORM}"),
    ),
    "/webhooks/slack/events": _operation(
        "slack",
        "Slack Events API",
        "Event envelopes (deduplicated on `event_id`) and the `url_verification` handshake, "
        "answered with its `challenge` and not stored.",
        parameters=_SLACK_HEADERS,
        requestBody=_body(
            {
                JSON: {
                    "schema": _object(["type"], type=_STRING, event_id=_STRING, challenge=_STRING)
                }
            },
            "An Events API envelope (`event_callback`) or `url_verification`",
        ),
        responses=_answers(
            {
                "description": "Stored (`WebhookAccepted`), or the handshake's `challenge`",
                "content": {
                    JSON: {"schema": {"oneOf": [_ref(WebhookAccepted), _ref(SlackChallenge)]}}
                },
            },
            _SLACK_SETTING,
            JSON,
        ),
    ),
    "/webhooks/slack/interactions": _operation(
        "slack",
        "Slack interactions",
        "Button presses (the incident's Acknowledge and Resolve). Deduplicated on the signed "
        "request: the same request is the same event.",
        parameters=_SLACK_HEADERS,
        requestBody=_body(_PAYLOAD_FORM, "The interaction payload in the form field `payload`"),
        responses=_answers(_stored(), _SLACK_SETTING, FORM),
    ),
    "/webhooks/slack/commands": _operation(
        "slack",
        "Slack slash commands",
        "`/incident ...`. Deduplicated on the signed request.",
        parameters=_SLACK_HEADERS,
        requestBody=_body(
            {FORM: {"schema": _object(["command"], command=_STRING, text=_STRING)}},
            "Slack's slash command form fields",
        ),
        responses=_answers(_stored(SlashCommandAccepted), _SLACK_SETTING, FORM),
    ),
}


def add_webhooks(schema: dict[str, Any]) -> None:
    """Merge the webhook paths (of the providers that exist) and their models into `schema`."""
    paths = schema.setdefault("paths", {})
    for path, (provider, item) in PATHS.items():
        if provider in ENDPOINT_FACTORIES:
            paths[path] = copy.deepcopy(item)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in MODELS:
        # ErrorOut is there already when any admin route documents it; the same model.
        if model.__name__ not in schemas:
            schemas[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
    tags = schema.setdefault("tags", [])
    if not any(t.get("name") == TAG for t in tags):
        tags.append({"name": TAG, "description": TAG_DESCRIPTION})
