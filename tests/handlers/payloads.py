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
    created: int = CREATED,
    destination: str | Payload | None = "ba_1PQ1ZyLkdIwHu7ixDn0RzJ3E",
    status: str = "failed",
) -> Payload:
    """A payout as in `payout.failed` (default) or, with status "paid", `payout.paid`."""
    failed = status == "failed"
    return {
        "id": payout_id,
        "object": "payout",
        "amount": amount,
        "arrival_date": created + 2 * 86_400,
        "automatic": True,
        "balance_transaction": "txn_1PQ9AbLkdIwHu7ixk9aQm3Xc",
        "created": created,
        "currency": currency,
        "destination": destination,
        "failure_balance_transaction": "txn_1PQ9BcLkdIwHu7ixb1Jd2cGk" if failed else None,
        "failure_code": failure_code if failed else None,
        "failure_message": failure_message if failed else None,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "reconciliation_status": "not_applicable" if failed else "completed",
        "source_type": "card",
        "statement_descriptor": None,
        "status": status,
        "type": "bank_account",
    }


def paid_payout(
    payout_id: str = "po_1PQDefLkdIwHu7ixR4n8VbQ2",
    created: int = CREATED + 86_400,
    destination: str | Payload | None = "ba_1PQ1ZyLkdIwHu7ixDn0RzJ3E",
    amount: int = 98_000,
) -> Payload:
    """A payout as in `payout.paid`: by default a day after `payout()`, same bank account."""
    return payout(payout_id, amount, created=created, destination=destination, status="paid")


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
    run_attempt: int = 1,
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
            run_attempt=run_attempt,
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
    status_id: int | None = 2_345_678_901,
    created_at: str | None = "2024-06-10T06:25:00Z",
) -> Payload:
    """A `deployment_status` `created` payload (`None` leaves a field out)."""
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
    status: Payload = {
        "id": status_id,
        "state": state,
        "creator": user("hubot", "Bot"),
        "description": "Health check failed after rollout" if state != "success" else "",
        "environment": environment,
        "target_url": target_url or "",
        "log_url": log_url or "",
        "environment_url": environment_url or "",
        "created_at": created_at,
        "updated_at": created_at,
    }
    return {
        "action": "created",
        "deployment_status": {k: v for k, v in status.items() if v is not None},
        "deployment": deployment,
        "repository": repository(repo),
        "sender": user("hubot", "Bot"),
    }


FIXED_AT = "2024-06-12T09:15:00Z"  # when an alert below was closed, two days after it opened


def code_scanning_alert(
    number: int = 7,
    security_severity_level: str | None = "high",
    rule_severity: str = "error",
    repo: str = "octo/app",
    action: str = "created",
    dismissed_at: str = FIXED_AT,
) -> Payload:
    """A `code_scanning_alert` payload (CodeQL), shaped per action after GitHub's examples
    (octokit/webhooks payload-examples, code_scanning_alert/*.payload.json): `fixed` carries
    the fixing analysis' `commit_oid` and no timestamp of the fix; `closed_by_user` a
    `dismissed_by`/`dismissed_at`/`dismissed_reason` and an empty `ref`/`commit_oid`;
    reopens null the dismissal fields and stamp nothing."""
    by_user = action in ("closed_by_user", "reopened_by_user")
    state = {"fixed": "fixed", "closed_by_user": "dismissed"}.get(action, "open")
    dismissed = action == "closed_by_user"
    commit = {"fixed": "c5bf87afac650dbcb5fd97cfc22fcae5303da8e1"}.get(
        action, "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d"
    )
    return {
        "action": action,
        "alert": {
            "number": number,
            "created_at": "2024-06-10T06:30:00Z",
            "url": f"https://api.github.com/repos/{repo}/code-scanning/alerts/{number}",
            "html_url": f"https://github.com/{repo}/security/code-scanning/{number}",
            "state": state,
            "dismissed_by": user("octocat") if dismissed else None,
            "dismissed_at": dismissed_at if dismissed else None,
            "dismissed_reason": "false positive" if dismissed else None,
            "dismissed_comment": "Input is validated upstream" if dismissed else None,
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
                "state": state,
                "commit_sha": commit,
                "location": {
                    "path": "app/reports.py",
                    "start_line": 57,
                    "end_line": 57,
                    "start_column": 20,
                    "end_column": 61,
                },
            },
        },
        "ref": "" if by_user else "refs/heads/main",
        "commit_oid": "" if by_user else commit,
        "repository": repository(repo),
        "sender": user("octocat") if by_user else user("github-advanced-security[bot]", "Bot"),
    }


def secret_scanning_alert(
    number: int = 3,
    repo: str = "octo/app",
    action: str = "created",
    updated_at: str | None = None,
    resolution: str = "revoked",
) -> Payload:
    """A `secret_scanning_alert` payload. The alert carries `updated_at` (nullable);
    `resolved` adds `resolution`, `resolved_at` and `resolved_by`; `reopened` nulls them."""
    created_at = "2024-06-10T06:40:00Z"
    resolved = action == "resolved"
    when = updated_at or (FIXED_AT if action != "created" else created_at)
    payload: Payload = {
        "action": action,
        "alert": {
            "number": number,
            "created_at": created_at,
            "updated_at": when,
            "url": f"https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}",
            "html_url": f"https://github.com/{repo}/security/secret-scanning/{number}",
            "locations_url": (
                f"https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}/locations"
            ),
            "secret_type": "stripe_api_key",
            "secret_type_display_name": "Stripe API Key",
            "validity": "inactive" if resolved else "active",
            "push_protection_bypassed": False,
            "publicly_leaked": False,
            "multi_repo": False,
            "resolution": resolution if resolved else None,
            "resolved_at": when if resolved else None,
            "resolved_by": user("octocat") if resolved else None,
            "resolution_comment": "Rotated in the dashboard" if resolved else None,
        },
        "repository": repository(repo),
    }
    if action != "created":
        payload["sender"] = user("octocat")  # a person resolved or reopened it
    return payload


def dependabot_alert(
    number: int = 12,
    advisory_severity: str | None = "critical",
    vulnerability_severity: str | None = "critical",
    repo: str = "octo/app",
    action: str = "created",
    updated_at: str | None = None,
) -> Payload:
    """A `dependabot_alert` payload, after GitHub's `fixed` example (octokit/webhooks
    payload-examples/api.github.com/dependabot_alert/fixed.payload.json): every action carries
    `updated_at`, equal to the closing action's own `fixed_at`/`dismissed_at`/
    `auto_dismissed_at`."""
    package = {"ecosystem": "pip", "name": "jinja2"}
    created_at = "2024-06-10T06:50:00Z"
    when = updated_at or (FIXED_AT if action != "created" else created_at)
    state = {
        "fixed": "fixed",
        "dismissed": "dismissed",
        "auto_dismissed": "auto_dismissed",
    }.get(action, "open")
    dismissed = action == "dismissed"
    return {
        "action": action,
        "alert": {
            "number": number,
            "state": state,
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
            "created_at": created_at,
            "updated_at": when,
            "dismissed_at": when if dismissed else None,
            "dismissed_by": user("octocat") if dismissed else None,
            "dismissed_reason": "tolerable_risk" if dismissed else None,
            "dismissed_comment": "Templates are never user-supplied" if dismissed else None,
            "fixed_at": when if action == "fixed" else None,
            "auto_dismissed_at": when if action == "auto_dismissed" else None,
        },
        "repository": repository(repo),
        "sender": user("octocat") if dismissed else user("dependabot[bot]", "Bot"),
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
    updated_at: str = "2024-06-10T07:05:00Z",
) -> Payload:
    """An `issues` payload; for `labeled`, `added` is the label just added (default: the last).
    `updated_at` is when this action touched the issue; a close also sets `closed_at`."""
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
            "updated_at": updated_at,
            "closed_at": updated_at if action == "closed" else None,
            "body": body,
        },
        "repository": repository(repo),
        "sender": user(sender),
    }
    if action in ("labeled", "unlabeled"):
        label = added if added is not None else (names[-1] if names else "incident")
        payload["label"] = {"id": 208045946, "name": label, "color": "d73a4a"}
    return payload
