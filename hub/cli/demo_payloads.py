"""What `hub demo` sends: requests shaped like Stripe's, GitHub's and Slack's, signed the way
each of them signs (integrations/signing.py, which the tests sign with too).

Every run draws fresh ids (events, disputes, payments, runs, deliveries), so running the demo
again makes new events and new incidents rather than duplicates of the last run's."""

from __future__ import annotations

import json
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from integrations.signing import signature_headers

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


def github_user(login: str = "octocat", kind: str = "User") -> Payload:
    return {
        "login": login,
        "id": 583231,
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "html_url": f"https://github.com/{login}",
        "type": kind,
        "site_admin": False,
    }


def github_repository(full_name: str = REPO, default_branch: str = "main") -> Payload:
    owner, _, name = full_name.partition("/")
    return {
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": name,
        "full_name": full_name,
        "private": True,
        "owner": github_user(owner, "Organization"),
        "html_url": f"https://github.com/{full_name}",
        "default_branch": default_branch,
    }


@dataclass(frozen=True)
class Run:
    """What varies between `workflow_run` deliveries; the rest is GitHub's usual shape."""

    conclusion: str | None
    branch: str | None
    run_number: int
    run_id: int
    sha: str
    message: str
    started_at: str
    workflow: str = WORKFLOW
    repo: str = REPO
    default_branch: str = "main"
    head_repo: str | None = None  # a fork's pull request runs on the fork's repository
    sender: str = "mona"
    run_attempt: int = 1  # a re-run of the same run number counts up from 1


def workflow_run_payload(r: Run) -> Payload:
    """A `workflow_run` `completed` payload, as GitHub sends it (the demo's and the tests')."""
    repo = github_repository(r.repo, r.default_branch)
    run: Payload = {
        "id": r.run_id,
        "name": r.workflow,
        "node_id": "WFR_kwLOBB8Zxc8AAAACNtx8fg",
        "head_branch": r.branch,
        "head_sha": r.sha,
        "path": ".github/workflows/ci.yml",
        "display_title": r.message.splitlines()[0],
        "run_number": r.run_number,
        "event": "push",
        "status": "completed",
        "conclusion": r.conclusion,
        "workflow_id": 161335,
        "html_url": f"https://github.com/{r.repo}/actions/runs/{r.run_id}",
        "run_attempt": r.run_attempt,
        "run_started_at": r.started_at,
        "actor": github_user(r.sender),
        "triggering_actor": github_user(r.sender),
        "head_commit": {
            "id": r.sha,
            "message": r.message,
            "timestamp": r.started_at,
            "author": {"name": "Mona Octocat", "email": "mona@example.com"},
            "committer": {"name": "GitHub", "email": "noreply@github.com"},
        },
        "repository": repo,
        "head_repository": github_repository(r.head_repo or r.repo, r.default_branch),
    }
    return {
        "action": "completed",
        "workflow_run": run,
        "workflow": {"id": 161335, "name": r.workflow, "path": run["path"], "state": "active"},
        "repository": repo,
        "sender": github_user(r.sender),
    }


def workflow_run(conclusion: str, run_number: int, message: str) -> Request:
    """`workflow_run` `completed` for the repository's default branch."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_id, sha = secrets.randbelow(10**10) + 10**10, secrets.token_hex(20)
    payload = workflow_run_payload(Run(conclusion, "main", run_number, run_id, sha, message, now))
    repo = payload["repository"]
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
    return request.headers | signature_headers(request.provider, request.body, secret, now)
