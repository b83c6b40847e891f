"""What `hub demo` sends: requests shaped like Stripe's, GitHub's and Slack's, signed the way
each of them signs (the hub is the verifier, so this is plain `hmac`, not an SDK helper).

Every run draws fresh ids (events, disputes, payments, runs, deliveries), so running the demo
again makes new events and new incidents rather than duplicates of the last run's."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

Payload = dict[str, Any]

STRIPE_API_VERSION = "2024-06-20"
REPO = "acme/storefront"
WORKFLOW = "CI"
SLACK_USER = "U0DEMO7ACK"  # the responder who presses Acknowledge
SLACK_TEAM = "T0DEMO0001"
# Same decline for each payment: the billing catalogue counts them as one incident per account.
DECLINE = ("card_declined", "insufficient_funds", "Your card has insufficient funds.")
CUSTOMERS = (("cus_Demo1Ava", 2900), ("cus_Demo2Ben", 12900), ("cus_Demo3Cai", 4900))
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Request:
    """One webhook delivery, before signing. `headers` are the unsigned ones."""

    provider: str  # "stripe" | "github" | "slack": which secret signs it
    path: str  # under the hub's base URL
    kind: str  # the event type, as the hub will store it
    about: str  # one short human line: what this delivery says
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def stripe_id(prefix: str) -> str:
    """An id the way Stripe writes them: prefix, underscore, 24 alphanumerics."""
    return f"{prefix}_1{''.join(secrets.choice(_ALNUM) for _ in range(23))}"


def money(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency.upper()}"  # the demo only uses two-decimal currencies


# --- Stripe -------------------------------------------------------------------------------


def _stripe_event(kind: str, obj: Payload, account: str | None = None) -> Payload:
    event: Payload = {"id": stripe_id("evt"), "object": "event"}
    if account is not None:
        event["account"] = account  # events from a Connect account name it
    event |= {
        "api_version": STRIPE_API_VERSION,
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": stripe_id("req"), "idempotency_key": str(uuid.uuid4())},
        "type": kind,
    }
    return event


def _stripe_request(event: Payload, about: str) -> Request:
    # Stripe sends its events pretty-printed with two-space indents.
    body = json.dumps(event, indent=2).encode()
    headers = {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return Request("stripe", "/webhooks/stripe", event["type"], about, body, headers)


def dispute_created() -> Request:
    """`charge.dispute.created` for a fresh dispute of a card payment."""
    now, amount = int(time.time()), 12900
    dispute: Payload = {
        "id": stripe_id("dp"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": stripe_id("ch"),
        "created": now,
        "currency": "usd",
        "evidence": {"customer_email_address": "ava@example.com", "product_description": None},
        "evidence_details": {
            "due_by": now + 9 * 86_400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": stripe_id("pi"),
        "reason": "fraudulent",
        "status": "needs_response",
    }
    about = f"{money(amount, 'usd')} disputed as fraudulent"
    return _stripe_request(_stripe_event("charge.dispute.created", dispute), about)


def payment_failed(account: str, n: int) -> Request:
    """`payment_intent.payment_failed` number `n` on one Connect account, one decline."""
    customer, amount = CUSTOMERS[n % len(CUSTOMERS)]
    code, decline_code, message = DECLINE
    intent: Payload = {
        "id": stripe_id("pi"),
        "object": "payment_intent",
        "amount": amount,
        "currency": "usd",
        "customer": customer,
        "created": int(time.time()),
        "last_payment_error": {
            "charge": stripe_id("ch"),
            "code": code,
            "decline_code": decline_code,
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            "message": message,
            "payment_method": {"id": stripe_id("pm"), "object": "payment_method", "type": "card"},
            "type": "card_error",
        },
        "livemode": False,
        "metadata": {},
        "status": "requires_payment_method",
    }
    event = _stripe_event("payment_intent.payment_failed", intent, account=account)
    about = f"{money(amount, 'usd')} declined ({decline_code}) on {account}"
    return _stripe_request(event, about)


# --- GitHub -------------------------------------------------------------------------------


def _user(login: str, kind: str = "User") -> Payload:
    return {"login": login, "id": 9_919, "type": kind, "html_url": f"https://github.com/{login}"}


def _repository() -> Payload:
    owner, _, name = REPO.partition("/")
    return {
        "id": 702_113_405,
        "name": name,
        "full_name": REPO,
        "private": True,
        "owner": _user(owner, "Organization"),
        "html_url": f"https://github.com/{REPO}",
        "default_branch": "main",
    }


def workflow_run(conclusion: str, run_number: int, message: str) -> Request:
    """`workflow_run` `completed` for the repository's default branch."""
    run_id, sha = secrets.randbelow(10**10) + 10**10, secrets.token_hex(20)
    repo = _repository()
    run: Payload = {
        "id": run_id,
        "name": WORKFLOW,
        "head_branch": "main",
        "head_sha": sha,
        "path": ".github/workflows/ci.yml",
        "display_title": message.splitlines()[0],
        "run_number": run_number,
        "event": "push",
        "status": "completed",
        "conclusion": conclusion,
        "workflow_id": 81_726_354,
        "html_url": f"https://github.com/{REPO}/actions/runs/{run_id}",
        "run_attempt": 1,
        "run_started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "actor": _user("mona"),
        "triggering_actor": _user("mona"),
        "head_commit": {
            "id": sha,
            "message": message,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "author": {"name": "Mona Octocat", "email": "mona@example.com"},
        },
        "repository": repo,
        "head_repository": repo,
    }
    payload: Payload = {
        "action": "completed",
        "workflow_run": run,
        "workflow": {"id": 81_726_354, "name": WORKFLOW, "path": run["path"], "state": "active"},
        "repository": repo,
        "sender": _user("mona"),
    }
    headers = {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/5c3a1d2",
        "x-github-event": "workflow_run",
        "x-github-delivery": str(uuid.uuid4()),
        "x-github-hook-id": "481516234",
        "x-github-hook-installation-target-type": "repository",
        "x-github-hook-installation-target-id": str(repo["id"]),
    }
    about = f"{WORKFLOW} #{run_number} on {REPO}@main: {conclusion}"
    return Request(
        "github",
        "/webhooks/github",
        "workflow_run.completed",
        about,
        json.dumps(payload).encode(),
        headers,
    )


# --- Slack --------------------------------------------------------------------------------


def press_acknowledge(
    incident_id: str, action_id: str, channel: str | None, ts: str | None
) -> Request:
    """A `block_actions` interaction: the Acknowledge button on the incident's message.

    No `response_url`: the press comes from no real Slack message, so there is nothing to
    answer through (an answer the hub owes, such as "nothing changed", goes to its log)."""
    channel = channel or "C0DEMOINCS"
    ts = ts or f"{time.time():.6f}"
    payload: Payload = {
        "type": "block_actions",
        "user": {"id": SLACK_USER, "username": "dana", "name": "dana", "team_id": SLACK_TEAM},
        "api_app_id": "A0DEMOHUB1",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{secrets.randbelow(10**12)}.{secrets.token_hex(8)}",
        "team": {"id": SLACK_TEAM, "domain": "acme-demo"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "incidents"},
        "message": {"type": "message", "ts": ts, "text": "incident"},
        "state": {"values": {}},
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"incident:{incident_id}",
                "text": {"type": "plain_text", "text": "Acknowledge", "emoji": True},
                "value": incident_id,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    about = f"<@{SLACK_USER}> presses Acknowledge on {incident_id}"
    return Request("slack", "/webhooks/slack/interactions", "block_actions", about, body, headers)


# --- Signing ------------------------------------------------------------------------------


def signed(request: Request, secret: str, now: float | None = None) -> dict[str, str]:
    """The request's headers plus its provider's signature, made as the provider makes it."""
    stamp = str(int(time.time() if now is None else now))
    headers = dict(request.headers)
    if request.provider == "stripe":
        digest = _hmac(secret, stamp.encode(), b".", request.body)
        headers["stripe-signature"] = f"t={stamp},v1={digest}"
    elif request.provider == "github":
        headers["x-hub-signature-256"] = "sha256=" + _hmac(secret, request.body)
    elif request.provider == "slack":
        headers["x-slack-request-timestamp"] = stamp
        headers["x-slack-signature"] = "v0=" + _hmac(secret, f"v0:{stamp}:".encode(), request.body)
    else:
        raise ValueError(f"no signing scheme for {request.provider!r}")
    return headers


def _hmac(secret: str, *parts: bytes) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.hexdigest()
