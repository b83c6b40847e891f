"""Sample webhook payloads shaped like the real ones, trimmed to what matters, for reuse.

Stripe: event objects as delivered to an endpoint (API version 2024-06-20), with the object
under data.object. GitHub: webhook payloads as documented for each event and action; the
event name itself travels in the X-GitHub-Event header, not in the payload."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub.cli.demo_payloads import Run, github_repository, github_user, workflow_run_payload

Payload = dict[str, Any]

CREATED = 1_718_000_000  # 2024-06-10 06:13:20 UTC


# --- Stripe -------------------------------------------------------------------------------


def stripe_event(
    type: str,
    obj: Payload,
    account: str | None = None,
    livemode: bool = False,
    event_id: str = "evt_1PQ8xvLkdIwHu7ixT2bM0n3Z",
) -> Payload:
    event: Payload = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": CREATED,
        "data": {"object": obj},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }
    if account is not None:
        event["account"] = account  # present on events from a Connect account
    return event


def dispute(
    dispute_id: str = "dp_1PQ8xvLkdIwHu7ixW0e5kT6p",
    amount: int = 4999,
    currency: str = "usd",
    reason: str = "fraudulent",
    status: str = "needs_response",
    charge: str = "ch_3PQ8xuLkdIwHu7ix0ksE9dQm",
    livemode: bool = False,
) -> Payload:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge,
        "created": CREATED,
        "currency": currency,
        "evidence": {"customer_email_address": None, "product_description": None},
        "evidence_details": {
            "due_by": CREATED + 9 * 86_400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": livemode,
        "metadata": {},
        "payment_intent": "pi_3PQ8xuLkdIwHu7ix0Y5cL0aP",
        "reason": reason,
        "status": status,
    }


def payout(
    payout_id: str = "po_1PQ9AbLkdIwHu7ixq2H1ZsVu",
    amount: int = 125_000,
    currency: str = "eur",
    failure_code: str | None = "account_closed",
    failure_message: str | None = "The bank account has been closed.",
) -> Payload:
    return {
        "id": payout_id,
        "object": "payout",
        "amount": amount,
        "arrival_date": CREATED + 2 * 86_400,
        "automatic": True,
        "balance_transaction": "txn_1PQ9AbLkdIwHu7ixk9aQm3Xc",
        "created": CREATED,
        "currency": currency,
        "destination": "ba_1PQ1ZyLkdIwHu7ixDn0RzJ3E",
        "failure_balance_transaction": "txn_1PQ9BcLkdIwHu7ixb1Jd2cGk",
        "failure_code": failure_code,
        "failure_message": failure_message,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "status": "failed",
        "type": "bank_account",
    }


def payment_intent_failed(
    intent_id: str = "pi_3PQAcdLkdIwHu7ix1mV8Qn2B",
    amount: int = 2000,
    currency: str = "usd",
    customer: str | None = "cus_QGh3jD8fZtq1Ab",
    decline_code: str | None = "insufficient_funds",
    message: str = "Your card has insufficient funds.",
) -> Payload:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "currency": currency,
        "customer": customer,
        "created": CREATED,
        "last_payment_error": {
            "charge": "ch_3PQAcdLkdIwHu7ix1b2Xq4Tz",
            "code": "card_declined",
            "decline_code": decline_code,
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": message,
            "type": "card_error",
        },
        "livemode": False,
        "metadata": {},
        "status": "requires_payment_method",
    }


def invoice_failed(
    invoice_id: str = "in_1PQAdeLkdIwHu7ixP0qM3sVt",
    amount_due: int = 1500,
    currency: str = "gbp",
    customer: str = "cus_QGh3jD8fZtq1Ab",
    attempt_count: int = 1,
    next_payment_attempt: int | None = CREATED + 3 * 86_400,
) -> Payload:
    return {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": amount_due,
        "amount_paid": 0,
        "amount_remaining": amount_due,
        "attempt_count": attempt_count,
        "attempted": True,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "currency": currency,
        "customer": customer,
        "customer_email": "jenny@example.com",
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1Nv0FGQ9RKHgCVdK/test_YWNj",
        "livemode": False,
        "next_payment_attempt": next_payment_attempt,
        "number": "A1B2C3D4-0007",
        "paid": False,
        "status": "open",
        "subscription": "sub_1PQ1ZyLkdIwHu7ixHw1Yw5nm",
    }


def early_fraud_warning(
    warning_id: str = "issfr_1PQBefLkdIwHu7ixsQ1wE8tV",
    charge: str = "ch_3PQBefLkdIwHu7ix0cP7mZ1e",
    fraud_type: str = "made_with_stolen_card",
    actionable: bool = True,
) -> Payload:
    return {
        "id": warning_id,
        "object": "radar.early_fraud_warning",
        "actionable": actionable,
        "charge": charge,
        "created": CREATED,
        "fraud_type": fraud_type,
        "livemode": False,
        "payment_intent": "pi_3PQBefLkdIwHu7ix0T1h4yQs",
    }


# --- GitHub -------------------------------------------------------------------------------


def user(login: str = "octocat", type: str = "User") -> Payload:
    return github_user(login, type)


def repository(full_name: str = "octo/app", default_branch: str = "main") -> Payload:
    return github_repository(full_name, default_branch)


def workflow_run(
    conclusion: str | None,
    branch: str | None,
    default_branch: str = "main",
    workflow: str = "CI",
    repo: str = "octo/app",
    run_number: int = 42,
    run_id: int = 9_512_345_678,
    head_repo: str | None = None,
    sender: str = "octocat",
) -> Payload:
    """A `workflow_run` `completed` payload (the demo's builder, with fixed ids)."""
    return workflow_run_payload(
        Run(
            conclusion,
            branch,
            run_number,
            run_id,
            sha="d6fde92930d4715a2b49857d24b940956b26d2d3",
            message="Fix the flaky payment retry test\n\nThe retry used wall-clock time.",
            started_at="2024-06-10T06:10:02Z",
            workflow=workflow,
            repo=repo,
            default_branch=default_branch,
            head_repo=head_repo,
            sender=sender,
        )
    )


def deployment_status(
    state: str,
    environment: str,
    repo: str = "octo/app",
    production_environment: bool | None = None,
    target_url: str | None = "https://deploy.example.com/runs/8812",
    log_url: str | None = "https://deploy.example.com/runs/8812/logs",
    environment_url: str | None = None,
) -> Payload:
    """A `deployment_status` `created` payload."""
    deployment: Payload = {
        "id": 1_234_567_890,
        "sha": "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d",
        "ref": "main",
        "task": "deploy",
        "payload": {},
        "environment": environment,
        "description": "Deploy request from hubot",
        "creator": user("hubot", "Bot"),
        "created_at": "2024-06-10T06:20:00Z",
        "transient_environment": False,
    }
    if production_environment is not None:
        deployment["production_environment"] = production_environment
    return {
        "action": "created",
        "deployment_status": {
            "id": 2_345_678_901,
            "state": state,
            "creator": user("hubot", "Bot"),
            "description": "Health check failed after rollout" if state != "success" else "",
            "environment": environment,
            "target_url": target_url or "",
            "log_url": log_url or "",
            "environment_url": environment_url or "",
            "created_at": "2024-06-10T06:25:00Z",
        },
        "deployment": deployment,
        "repository": repository(repo),
        "sender": user("hubot", "Bot"),
    }


def code_scanning_alert(
    number: int = 7,
    security_severity_level: str | None = "high",
    rule_severity: str = "error",
    repo: str = "octo/app",
) -> Payload:
    """A `code_scanning_alert` `created` payload (CodeQL)."""
    return {
        "action": "created",
        "alert": {
            "number": number,
            "created_at": "2024-06-10T06:30:00Z",
            "url": f"https://api.github.com/repos/{repo}/code-scanning/alerts/{number}",
            "html_url": f"https://github.com/{repo}/security/code-scanning/{number}",
            "state": "open",
            "dismissed_by": None,
            "rule": {
                "id": "py/sql-injection",
                "name": "py/sql-injection",
                "severity": rule_severity,
                "security_severity_level": security_severity_level,
                "description": "SQL query built from user-controlled sources",
                "tags": ["security", "external/cwe/cwe-089"],
            },
            "tool": {"name": "CodeQL", "guid": None, "version": "2.17.5"},
            "most_recent_instance": {
                "ref": "refs/heads/main",
                "analysis_key": ".github/workflows/codeql.yml:analyze",
                "state": "open",
                "commit_sha": "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d",
                "location": {
                    "path": "app/reports.py",
                    "start_line": 57,
                    "end_line": 57,
                    "start_column": 20,
                    "end_column": 61,
                },
            },
        },
        "ref": "refs/heads/main",
        "commit_oid": "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d",
        "repository": repository(repo),
        "sender": user("github-advanced-security[bot]", "Bot"),
    }


def secret_scanning_alert(number: int = 3, repo: str = "octo/app") -> Payload:
    """A `secret_scanning_alert` `created` payload."""
    return {
        "action": "created",
        "alert": {
            "number": number,
            "created_at": "2024-06-10T06:40:00Z",
            "url": f"https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}",
            "html_url": f"https://github.com/{repo}/security/secret-scanning/{number}",
            "secret_type": "stripe_api_key",
            "secret_type_display_name": "Stripe API Key",
            "validity": "active",
            "push_protection_bypassed": False,
            "publicly_leaked": False,
            "multi_repo": False,
            "resolution": None,
        },
        "repository": repository(repo),
    }


def dependabot_alert(
    number: int = 12,
    advisory_severity: str | None = "critical",
    vulnerability_severity: str | None = "critical",
    repo: str = "octo/app",
) -> Payload:
    """A `dependabot_alert` `created` payload."""
    package = {"ecosystem": "pip", "name": "jinja2"}
    return {
        "action": "created",
        "alert": {
            "number": number,
            "state": "open",
            "dependency": {
                "package": package,
                "manifest_path": "requirements.txt",
                "scope": "runtime",
            },
            "security_advisory": {
                "ghsa_id": "GHSA-h75v-3vvj-5mfj",
                "cve_id": "CVE-2024-34064",
                "summary": "Jinja vulnerable to HTML attribute injection",
                "severity": advisory_severity,
                "cvss": {"score": 5.4, "vector_string": None},
            },
            "security_vulnerability": {
                "package": package,
                "severity": vulnerability_severity,
                "vulnerable_version_range": "< 3.1.4",
                "first_patched_version": {"identifier": "3.1.4"},
            },
            "url": f"https://api.github.com/repos/{repo}/dependabot/alerts/{number}",
            "html_url": f"https://github.com/{repo}/security/dependabot/{number}",
            "created_at": "2024-06-10T06:50:00Z",
        },
        "repository": repository(repo),
        "sender": user("dependabot[bot]", "Bot"),
    }


def issue_event(
    action: str,
    labels: Iterable[str],
    body: str = "",
    number: int = 101,
    title: str = "Checkout returns 500 for EU customers",
    repo: str = "octo/app",
    added: str | None = None,
    state: str | None = None,
    sender: str = "octocat",
) -> Payload:
    """An `issues` payload; for `labeled`, `added` is the label just added (default: the last)."""
    names = list(labels)
    payload: Payload = {
        "action": action,
        "issue": {
            "url": f"https://api.github.com/repos/{repo}/issues/{number}",
            "html_url": f"https://github.com/{repo}/issues/{number}",
            "id": 2_345_678,
            "number": number,
            "title": title,
            "user": user("mona"),
            "labels": [
                {"id": 208045946 + i, "name": name, "color": "d73a4a", "default": False}
                for i, name in enumerate(names)
            ],
            "state": state or ("closed" if action == "closed" else "open"),
            "comments": 0,
            "created_at": "2024-06-10T07:00:00Z",
            "body": body,
        },
        "repository": repository(repo),
        "sender": user(sender),
    }
    if action in ("labeled", "unlabeled"):
        label = added if added is not None else (names[-1] if names else "incident")
        payload["label"] = {"id": 208045946, "name": label, "color": "d73a4a"}
    return payload
