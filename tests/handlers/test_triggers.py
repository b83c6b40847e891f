"""The incident catalogue's trigger functions, decided from realistic payloads alone."""

from __future__ import annotations

import pytest

from handlers.billing import (
    count_failed_payment,
    open_dispute_incident,
    open_fraud_warning_incident,
    open_payout_incident,
    resolve_dispute_incident,
    resolve_payout_incident,
)
from handlers.delivery import track_ci_on_default_branch, track_deploy_status
from handlers.routing_table import ROUTES
from handlers.security import (
    mirror_incident_issue,
    open_code_scanning_incident,
    open_secret_leak_incident,
    open_vulnerable_dependency_incident,
    resolve_code_scanning_incident,
    resolve_secret_leak_incident,
    resolve_vulnerable_dependency_incident,
)
from handlers.triggers.model import Change, Link, Severity, Trigger, Version
from handlers.triggers.payload import PayloadError, format_amount, names, opt_int, opt_ref, opt_str
from tests.handlers import payloads as p


def opened(trigger: Trigger | None) -> Trigger:
    assert trigger is not None
    assert trigger.change is Change.OPEN
    return trigger


def resolved(trigger: Trigger | None) -> Trigger:
    assert trigger is not None
    assert trigger.change is Change.RESOLVE
    return trigger


def version(trigger: Trigger | None) -> Version:
    """The trigger's version, which must be set."""
    assert trigger is not None
    assert trigger.version is not None
    return trigger.version


# --- payload helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (4999, "usd", "49.99 USD"),
        (123_456_789, "eur", "1,234,567.89 EUR"),
        (5000, "jpy", "5,000 JPY"),
        (5000, "JPY", "5,000 JPY"),
        (150_000, "krw", "150,000 KRW"),
        (12_345, "kwd", "12.345 KWD"),
        (50_000, "isk", "500.00 ISK"),  # two-decimal in the API although charged in whole units
        (-250, "usd", "-2.50 USD"),
        (0, "usd", "0.00 USD"),
    ],
)
def test_amounts_are_shown_in_major_units(amount: int, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


def test_amount_without_currency_or_value_degrades() -> None:
    assert format_amount(1000, None) == "10.00"
    assert format_amount(None, "usd") == "an unknown amount"


def test_readers_treat_wrong_types_as_absent() -> None:
    data: dict[str, object] = {
        "a": {"b": "x", "n": True, "blank": "  ", "list": ["no"]},
        "charge": {"id": "ch_1", "object": "charge"},
        "labels": [{"name": "Incident"}, "junk", {"name": 3}, {"nom": "x"}],
    }
    assert opt_str(data, "a.b") == "x"
    assert opt_str(data, "a.b.c") is None
    assert opt_str(data, "a.blank") is None
    assert opt_int(data, "a.n") is None  # JSON true is not an integer
    assert opt_str(data, "a.list") is None
    assert opt_ref(data, "charge") == "ch_1"  # an expanded Stripe object
    assert names(data, "labels") == frozenset({"incident"})
    assert names(data, "a.b") == frozenset()


def test_payload_error_is_a_value_error_naming_the_field() -> None:
    error = PayloadError("data.object.id", "a non-empty string")
    assert isinstance(error, ValueError)
    assert error.path == "data.object.id"
    assert "'data.object.id'" in str(error)


# --- Stripe: disputes ---------------------------------------------------------------------


def test_dispute_created_opens_sev2_incident_keyed_per_dispute() -> None:
    event = p.stripe_event("charge.dispute.created", p.dispute())

    trigger = opened(open_dispute_incident(event))

    assert trigger.key == "stripe:dispute:dp_1PQ8xvLkdIwHu7ixW0e5kT6p"
    assert trigger.severity is Severity.SEV2
    assert trigger.actor == "stripe"
    assert "49.99 USD" in trigger.title
    assert "fraudulent" in trigger.title
    assert "ch_3PQ8xuLkdIwHu7ix0ksE9dQm" in trigger.title
    assert "Evidence due by 2024-06-19" in trigger.summary
    assert trigger.links == (
        Link(
            "Dispute in Stripe",
            "https://dashboard.stripe.com/test/disputes/dp_1PQ8xvLkdIwHu7ixW0e5kT6p",
        ),
    )


def test_same_dispute_always_gives_the_same_key() -> None:
    first = open_dispute_incident(p.stripe_event("charge.dispute.created", p.dispute()))
    again = open_dispute_incident(
        p.stripe_event("charge.dispute.created", p.dispute(), event_id="evt_other")
    )
    other = open_dispute_incident(
        p.stripe_event("charge.dispute.created", p.dispute(dispute_id="dp_other"))
    )
    assert first.key == again.key
    assert first.key != other.key


def test_live_dispute_links_to_the_live_dashboard() -> None:
    event = p.stripe_event("charge.dispute.created", p.dispute(livemode=True), livemode=True)
    (link,) = open_dispute_incident(event).links
    assert link.url == "https://dashboard.stripe.com/disputes/dp_1PQ8xvLkdIwHu7ixW0e5kT6p"


def test_dispute_in_zero_decimal_currency() -> None:
    event = p.stripe_event("charge.dispute.created", p.dispute(amount=12_000, currency="jpy"))
    trigger = opened(open_dispute_incident(event))
    assert "12,000 JPY" in trigger.title
    assert "120.00" not in trigger.title


def test_dispute_with_expanded_charge_names_the_charge_id() -> None:
    obj = p.dispute()
    obj["charge"] = {"id": "ch_expanded", "object": "charge", "amount": 4999}
    trigger = open_dispute_incident(p.stripe_event("charge.dispute.created", obj))
    assert "ch_expanded" in trigger.title


@pytest.mark.parametrize(("status", "word"), [("won", "won"), ("lost", "lost")])
def test_dispute_closed_resolves_the_same_key_and_says_won_or_lost(status: str, word: str) -> None:
    created = open_dispute_incident(p.stripe_event("charge.dispute.created", p.dispute()))
    closed = resolved(
        resolve_dispute_incident(p.stripe_event("charge.dispute.closed", p.dispute(status=status)))
    )
    assert closed.key == created.key
    assert word in closed.note
    assert "49.99 USD" in closed.note


def test_dispute_without_id_is_a_value_error_naming_the_field() -> None:
    obj = p.dispute()
    del obj["id"]
    with pytest.raises(ValueError, match=r"'id'"):
        open_dispute_incident(p.stripe_event("charge.dispute.created", obj))


def test_event_without_data_object_is_a_value_error() -> None:
    event = p.stripe_event("charge.dispute.created", p.dispute())
    event["data"] = {"object": "dp_123"}  # wrongly typed
    with pytest.raises(ValueError, match=r"'data\.object'"):
        open_dispute_incident(event)


def test_dispute_with_wrongly_typed_optional_fields_degrades() -> None:
    obj = p.dispute()
    obj.update(amount="4999", currency=None, reason=7, charge=None, evidence_details=[])
    trigger = opened(open_dispute_incident(p.stripe_event("charge.dispute.created", obj)))
    assert trigger.key == "stripe:dispute:dp_1PQ8xvLkdIwHu7ixW0e5kT6p"
    assert "unknown amount" in trigger.title


# --- Stripe: payouts, failed payments, fraud ----------------------------------------------


def test_failed_payout_opens_sev1_with_failure_and_amount() -> None:
    event = p.stripe_event("payout.failed", p.payout())

    trigger = opened(open_payout_incident(event))

    assert trigger.key == "stripe:payout:platform:ba_1PQ1ZyLkdIwHu7ixDn0RzJ3E"  # per destination
    assert trigger.severity is Severity.SEV1
    assert "1,250.00 EUR" in trigger.title
    assert "account_closed" in trigger.title
    assert "The bank account has been closed." in trigger.summary
    assert trigger.links[0].url.endswith("/test/payouts/po_1PQ9AbLkdIwHu7ixq2H1ZsVu")


def test_failed_payout_without_failure_details_still_opens() -> None:
    event = p.stripe_event("payout.failed", p.payout(failure_code=None, failure_message=None))
    trigger = opened(open_payout_incident(event))
    assert "unknown failure" in trigger.title


def test_failed_payments_share_a_key_per_account_across_event_types() -> None:
    intent = count_failed_payment(
        p.stripe_event("payment_intent.payment_failed", p.payment_intent_failed())
    )
    invoice = count_failed_payment(p.stripe_event("invoice.payment_failed", p.invoice_failed()))
    assert intent.key == invoice.key == "stripe:failed-payments:platform"
    assert intent.title == "Failed payments on platform"
    assert intent.severity is Severity.SEV3


def test_failed_payments_differ_across_connect_accounts() -> None:
    one = count_failed_payment(
        p.stripe_event(
            "payment_intent.payment_failed", p.payment_intent_failed(), account="acct_1One"
        )
    )
    two = count_failed_payment(
        p.stripe_event("invoice.payment_failed", p.invoice_failed(), account="acct_2Two")
    )
    platform = count_failed_payment(
        p.stripe_event("payment_intent.payment_failed", p.payment_intent_failed())
    )
    assert one.key == "stripe:failed-payments:acct_1One"
    assert two.key == "stripe:failed-payments:acct_2Two"
    assert len({one.key, two.key, platform.key}) == 3
    assert one.title == "Failed payments on acct_1One"


def test_failed_payment_intent_summarises_the_latest_failure() -> None:
    event = p.stripe_event("payment_intent.payment_failed", p.payment_intent_failed())
    trigger = opened(count_failed_payment(event))
    assert "Your card has insufficient funds." in trigger.summary
    assert "insufficient_funds" in trigger.summary
    assert "20.00 USD" in trigger.summary
    assert "cus_QGh3jD8fZtq1Ab" in trigger.summary
    assert trigger.note.startswith("Payment failed: ")
    assert trigger.links[0].url.endswith("/test/payments/pi_3PQAcdLkdIwHu7ix1mV8Qn2B")


def test_failed_invoice_summarises_amount_customer_and_retry() -> None:
    event = p.stripe_event("invoice.payment_failed", p.invoice_failed(attempt_count=2))
    trigger = opened(count_failed_payment(event))
    assert "15.00 GBP" in trigger.summary
    assert "jenny@example.com" in trigger.summary
    assert "attempt 2" in trigger.summary
    assert "next retry 2024-06-13" in trigger.summary
    assert trigger.links[0].url.endswith("/test/invoices/in_1PQAdeLkdIwHu7ixP0qM3sVt")


def test_failed_payment_without_error_details_degrades() -> None:
    obj = p.payment_intent_failed(customer=None)
    obj["last_payment_error"] = None
    trigger = opened(count_failed_payment(p.stripe_event("payment_intent.payment_failed", obj)))
    assert "no error message" in trigger.summary
    assert "no customer" in trigger.summary


def test_early_fraud_warning_opens_sev2_per_warning() -> None:
    event = p.stripe_event("radar.early_fraud_warning.created", p.early_fraud_warning())

    trigger = opened(open_fraud_warning_incident(event))

    assert trigger.key == "stripe:fraud-warning:issfr_1PQBefLkdIwHu7ixsQ1wE8tV"
    assert trigger.severity is Severity.SEV2
    assert "made with stolen card" in trigger.title
    assert "ch_3PQBefLkdIwHu7ix0cP7mZ1e" in trigger.title
    assert "Actionable" in trigger.summary
    assert trigger.links[0].url.endswith("/test/payments/pi_3PQBefLkdIwHu7ix0T1h4yQs")


# --- GitHub: CI on the default branch -----------------------------------------------------


def test_ci_failure_on_default_branch_opens_sev2() -> None:
    trigger = opened(track_ci_on_default_branch(p.workflow_run("failure", "main")))

    assert trigger.key == "github:ci:octo/app:CI"
    assert trigger.severity is Severity.SEV2
    assert trigger.title == "CI broken on main: CI in octo/app"
    assert trigger.actor == "github:octocat"
    assert "d6fde92" in trigger.summary
    assert "Fix the flaky payment retry test" in trigger.summary
    assert "wall-clock" not in trigger.summary  # first line of the commit message only
    assert "octocat" in trigger.summary
    assert trigger.links == (
        Link("Workflow run", "https://github.com/octo/app/actions/runs/9512345678"),
    )


@pytest.mark.parametrize("conclusion", ["timed_out", "startup_failure"])
def test_ci_timeouts_and_startup_failures_also_open(conclusion: str) -> None:
    trigger = opened(track_ci_on_default_branch(p.workflow_run(conclusion, "main")))
    assert trigger.key == "github:ci:octo/app:CI"


def test_ci_failure_uses_the_repositorys_own_default_branch() -> None:
    payload = p.workflow_run("failure", "trunk", default_branch="trunk", workflow="Build")
    trigger = opened(track_ci_on_default_branch(payload))
    assert trigger.title == "CI broken on trunk: Build in octo/app"
    assert trigger.key == "github:ci:octo/app:Build"


def test_ci_failure_on_a_feature_branch_is_nothing() -> None:
    assert track_ci_on_default_branch(p.workflow_run("failure", "feature/retry")) is None


def test_ci_failure_from_a_forks_main_is_nothing() -> None:
    payload = p.workflow_run("failure", "main", head_repo="someone/app")
    assert track_ci_on_default_branch(payload) is None


def test_ci_success_on_default_branch_resolves_the_same_key() -> None:
    failed = opened(track_ci_on_default_branch(p.workflow_run("failure", "main")))
    passed = resolved(track_ci_on_default_branch(p.workflow_run("success", "main", run_number=43)))
    assert passed.key == failed.key
    assert "CI run #43" in passed.note


def test_ci_success_on_a_feature_branch_is_nothing() -> None:
    assert track_ci_on_default_branch(p.workflow_run("success", "feature/retry")) is None


@pytest.mark.parametrize("conclusion", ["cancelled", "skipped", "neutral", "action_required", None])
def test_ci_other_conclusions_are_nothing(conclusion: str | None) -> None:
    assert track_ci_on_default_branch(p.workflow_run(conclusion, "main")) is None


def test_ci_run_without_a_head_branch_is_nothing() -> None:
    assert track_ci_on_default_branch(p.workflow_run("failure", None)) is None


def test_ci_workflows_are_keyed_separately() -> None:
    ci = opened(track_ci_on_default_branch(p.workflow_run("failure", "main", workflow="CI")))
    lint = opened(track_ci_on_default_branch(p.workflow_run("failure", "main", workflow="Lint")))
    assert ci.key != lint.key


def test_ci_requested_or_in_progress_is_nothing() -> None:
    payload = p.workflow_run("failure", "main")
    payload["action"] = "requested"
    assert track_ci_on_default_branch(payload) is None


def test_ci_without_repository_is_a_value_error_naming_the_field() -> None:
    payload = p.workflow_run("failure", "main")
    del payload["repository"]["default_branch"]
    with pytest.raises(ValueError, match=r"'repository\.default_branch'"):
        track_ci_on_default_branch(payload)


def test_ci_without_workflow_name_is_a_value_error() -> None:
    payload = p.workflow_run("failure", "main")
    del payload["workflow_run"]["name"]
    del payload["workflow"]
    with pytest.raises(ValueError, match=r"'workflow_run\.name'"):
        track_ci_on_default_branch(payload)


def test_ci_failure_without_optional_details_still_opens() -> None:
    payload = p.workflow_run("failure", "main")
    run = payload["workflow_run"]
    for field in ("head_commit", "head_sha", "html_url", "actor", "run_number"):
        run[field] = None
    del payload["sender"]
    trigger = opened(track_ci_on_default_branch(payload))
    assert trigger.links == ()
    assert trigger.actor == "github"


# --- GitHub: deployments ------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["production", "Production", "prod", "prod-eu"])
def test_failed_production_deploy_opens_sev1(environment: str) -> None:
    trigger = opened(track_deploy_status(p.deployment_status("failure", environment)))
    assert trigger.severity is Severity.SEV1
    assert trigger.key == f"github:deploy:octo/app:{environment}"


def test_deploy_flagged_production_environment_is_sev1() -> None:
    payload = p.deployment_status("error", "live-us", production_environment=True)
    assert opened(track_deploy_status(payload)).severity is Severity.SEV1


@pytest.mark.parametrize("environment", ["staging", "preprod", "non-prod", "review-pr-12"])
def test_failed_other_deploy_opens_sev2(environment: str) -> None:
    payload = p.deployment_status("error", environment, production_environment=False)
    trigger = opened(track_deploy_status(payload))
    assert trigger.severity is Severity.SEV2
    assert trigger.title == f"Deploy failed: octo/app to {environment}"


def test_failed_deploy_links_and_summary() -> None:
    payload = p.deployment_status(
        "failure", "production", environment_url="https://app.example.com"
    )
    trigger = opened(track_deploy_status(payload))
    assert trigger.links == (
        Link("Deployment", "https://deploy.example.com/runs/8812"),
        Link("Logs", "https://deploy.example.com/runs/8812/logs"),
        Link("Environment", "https://app.example.com"),
    )
    assert "Health check failed after rollout" in trigger.summary
    assert "main at a84d88e" in trigger.summary
    assert trigger.actor == "github:hubot"


def test_deploy_links_skip_empty_and_duplicate_urls() -> None:
    same = "https://deploy.example.com/runs/9"
    payload = p.deployment_status("failure", "staging", target_url=same, log_url=same)
    assert opened(track_deploy_status(payload)).links == (Link("Deployment", same),)


def test_successful_deploy_resolves_the_same_key() -> None:
    failed = opened(track_deploy_status(p.deployment_status("failure", "production")))
    succeeded = resolved(track_deploy_status(p.deployment_status("success", "production")))
    assert succeeded.key == failed.key


@pytest.mark.parametrize("state", ["pending", "in_progress", "queued", "inactive"])
def test_other_deploy_states_are_nothing(state: str) -> None:
    assert track_deploy_status(p.deployment_status(state, "production")) is None


def test_deploy_without_state_is_a_value_error_naming_the_field() -> None:
    payload = p.deployment_status("failure", "production")
    del payload["deployment_status"]["state"]
    with pytest.raises(ValueError, match=r"'deployment_status\.state'"):
        track_deploy_status(payload)


def test_deploy_environment_falls_back_to_the_deployment() -> None:
    payload = p.deployment_status("failure", "production")
    del payload["deployment_status"]["environment"]
    assert opened(track_deploy_status(payload)).key == "github:deploy:octo/app:production"


# --- GitHub: security alerts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        ("critical", Severity.SEV1),
        ("high", Severity.SEV2),
        ("medium", Severity.SEV3),
        ("low", Severity.SEV4),
    ],
)
def test_code_scanning_severity_from_security_level(level: str, severity: Severity) -> None:
    trigger = opened(
        open_code_scanning_incident(p.code_scanning_alert(security_severity_level=level))
    )
    assert trigger.severity is severity
    assert trigger.key == "github:code-scanning:octo/app:7"


@pytest.mark.parametrize(
    ("rule_severity", "severity"),
    [("error", Severity.SEV2), ("warning", Severity.SEV3), ("note", Severity.SEV4)],
)
def test_code_scanning_falls_back_to_rule_severity(rule_severity: str, severity: Severity) -> None:
    payload = p.code_scanning_alert(security_severity_level=None, rule_severity=rule_severity)
    assert opened(open_code_scanning_incident(payload)).severity is severity


def test_code_scanning_alert_title_summary_and_link() -> None:
    trigger = opened(open_code_scanning_incident(p.code_scanning_alert()))
    assert (
        trigger.title == "Code scanning: SQL query built from user-controlled sources in octo/app"
    )
    assert "app/reports.py:57 on refs/heads/main" in trigger.summary
    assert "CodeQL" in trigger.summary
    assert trigger.links == (
        Link("Alert on GitHub", "https://github.com/octo/app/security/code-scanning/7"),
    )


def test_code_scanning_alert_without_number_is_a_value_error() -> None:
    payload = p.code_scanning_alert()
    payload["alert"]["number"] = "7"
    with pytest.raises(ValueError, match=r"'alert\.number'"):
        open_code_scanning_incident(payload)


def test_secret_scanning_alert_is_always_sev1() -> None:
    trigger = opened(open_secret_leak_incident(p.secret_scanning_alert()))
    assert trigger.severity is Severity.SEV1
    assert trigger.key == "github:secret-scanning:octo/app:3"
    assert trigger.title == "Secret leaked: Stripe API Key in octo/app"
    assert "active" in trigger.summary
    assert trigger.actor == "github"  # secret scanning payloads may carry no sender
    assert trigger.links[0].url == "https://github.com/octo/app/security/secret-scanning/3"


@pytest.mark.parametrize(
    ("advisory", "vulnerability", "severity"),
    [
        ("critical", "critical", Severity.SEV1),
        ("high", None, Severity.SEV2),
        ("moderate", None, Severity.SEV3),
        (None, "low", Severity.SEV4),
        (None, None, Severity.SEV3),
    ],
)
def test_dependabot_severity_from_the_advisory(
    advisory: str | None, vulnerability: str | None, severity: Severity
) -> None:
    payload = p.dependabot_alert(advisory_severity=advisory, vulnerability_severity=vulnerability)
    assert opened(open_vulnerable_dependency_incident(payload)).severity is severity


def test_dependabot_alert_title_summary_and_link() -> None:
    trigger = opened(open_vulnerable_dependency_incident(p.dependabot_alert()))
    assert trigger.key == "github:dependabot:octo/app:12"
    assert trigger.title == "Vulnerable dependency: jinja2 (CVE-2024-34064) in octo/app"
    assert "Fixed in 3.1.4" in trigger.summary
    assert "requirements.txt" in trigger.summary
    assert trigger.links[0].url == "https://github.com/octo/app/security/dependabot/12"


def test_security_alert_kinds_do_not_share_keys() -> None:
    keys = {
        opened(open_code_scanning_incident(p.code_scanning_alert(number=5))).key,
        opened(open_secret_leak_incident(p.secret_scanning_alert(number=5))).key,
        opened(open_vulnerable_dependency_incident(p.dependabot_alert(number=5))).key,
    }
    assert len(keys) == 3


# --- GitHub: issues labelled incident -----------------------------------------------------


def test_issue_labelled_incident_opens_sev3_mirror() -> None:
    trigger = opened(mirror_incident_issue(p.issue_event("labeled", ["bug", "incident"])))
    assert trigger.key == "github:issue:octo/app:101"
    assert trigger.title == "Checkout returns 500 for EU customers"
    assert trigger.severity is Severity.SEV3
    assert trigger.actor == "github:octocat"
    assert trigger.links == (Link("Issue on GitHub", "https://github.com/octo/app/issues/101"),)


def test_incident_label_is_case_insensitive() -> None:
    assert mirror_incident_issue(p.issue_event("labeled", ["Incident"])) is not None


@pytest.mark.parametrize(
    ("labels", "severity"),
    [
        (["sev1", "incident"], Severity.SEV1),
        (["SEV2", "incident"], Severity.SEV2),
        (["sev-4", "incident"], Severity.SEV4),
        (["sev3", "sev2", "incident"], Severity.SEV2),
    ],
)
def test_issue_severity_label_sets_the_severity(labels: list[str], severity: Severity) -> None:
    payload = p.issue_event("labeled", labels, added="incident")
    assert opened(mirror_incident_issue(payload)).severity is severity


def test_other_labels_are_nothing() -> None:
    payload = p.issue_event("labeled", ["incident", "bug"], added="bug")
    assert mirror_incident_issue(payload) is None


def test_closing_an_incident_issue_resolves_the_same_key() -> None:
    opening = opened(mirror_incident_issue(p.issue_event("labeled", ["incident"])))
    closing = resolved(mirror_incident_issue(p.issue_event("closed", ["incident"])))
    assert closing.key == opening.key


def test_closing_an_ordinary_issue_is_nothing() -> None:
    assert mirror_incident_issue(p.issue_event("closed", ["bug"])) is None


def test_labelling_a_closed_issue_is_nothing() -> None:
    assert mirror_incident_issue(p.issue_event("labeled", ["incident"], state="closed")) is None


@pytest.mark.parametrize("action", ["labeled", "closed"])
def test_hub_tracking_issue_by_label_is_nothing(action: str) -> None:
    payload = p.issue_event(action, ["hub-incident", "incident"], added="incident")
    assert mirror_incident_issue(payload) is None


@pytest.mark.parametrize("action", ["labeled", "closed"])
def test_hub_tracking_issue_by_body_marker_is_nothing(action: str) -> None:
    body = "Opened by the webhook hub.\n\n<!-- hub:incident=42 -->"
    assert mirror_incident_issue(p.issue_event(action, ["incident"], body=body)) is None


def test_other_issue_actions_are_nothing() -> None:
    assert mirror_incident_issue(p.issue_event("opened", ["incident"])) is None


def test_issue_without_number_is_a_value_error() -> None:
    payload = p.issue_event("labeled", ["incident"])
    del payload["issue"]["number"]
    with pytest.raises(ValueError, match=r"'issue\.number'"):
        mirror_incident_issue(payload)


# --- Versions: the provider's own order, and every opening action's closing one --------


def test_dispute_versions_rank_open_below_closed() -> None:
    created = opened(open_dispute_incident(p.stripe_event("charge.dispute.created", p.dispute())))
    closed = resolved(
        resolve_dispute_incident(p.stripe_event("charge.dispute.closed", p.dispute(status="won")))
    )
    assert created.version == (0,)
    assert closed.version == (1,)
    assert version(created) < version(closed)  # a `closed` delivered first makes `created` stale


def test_a_duplicate_dispute_created_is_equal_so_stale() -> None:
    first = open_dispute_incident(p.stripe_event("charge.dispute.created", p.dispute()))
    again = open_dispute_incident(
        p.stripe_event("charge.dispute.created", p.dispute(), event_id="evt_same_change_again")
    )
    assert version(first) == version(again)


@pytest.mark.parametrize(
    ("status", "rank"),
    [
        ("warning_needs_response", 0),
        ("warning_under_review", 0),
        ("needs_response", 0),
        ("under_review", 0),
        ("won", 1),
        ("lost", 1),
        ("warning_closed", 1),
        ("prevented", 1),  # any other status is final
    ],
)
def test_dispute_status_rank(status: str, rank: int) -> None:
    event = p.stripe_event("charge.dispute.created", p.dispute(status=status))
    assert open_dispute_incident(event).version == (rank,)


def test_dispute_closed_as_an_inquiry_resolves_and_says_so() -> None:
    event = p.stripe_event("charge.dispute.closed", p.dispute(status="warning_closed"))
    closed = resolved(resolve_dispute_incident(event))
    assert "closed (inquiry only)" in closed.note
    assert closed.version == (1,)


def test_dispute_without_status_ranks_by_its_event_type() -> None:
    obj = p.dispute()
    del obj["status"]
    assert open_dispute_incident(p.stripe_event("charge.dispute.created", obj)).version == (0,)
    assert resolve_dispute_incident(p.stripe_event("charge.dispute.closed", obj)).version == (1,)


def test_paid_payout_to_the_same_destination_resolves_the_failed_one() -> None:
    failed = opened(open_payout_incident(p.stripe_event("payout.failed", p.payout())))
    paid = resolved(resolve_payout_incident(p.stripe_event("payout.paid", p.paid_payout())))
    assert paid.key == failed.key == "stripe:payout:platform:ba_1PQ1ZyLkdIwHu7ixDn0RzJ3E"
    assert (
        paid.note
        == "Payout po_1PQDefLkdIwHu7ixR4n8VbQ2 of 980.00 EUR paid to ba_1PQ1ZyLkdIwHu7ixDn0RzJ3E"
    )
    assert paid.actor == "stripe"


def test_an_older_failed_payout_is_below_a_newer_paid_one() -> None:
    failed = open_payout_incident(p.stripe_event("payout.failed", p.payout(created=p.CREATED)))
    paid = resolve_payout_incident(
        p.stripe_event("payout.paid", p.paid_payout(created=p.CREATED + 86_400))
    )
    newer = open_payout_incident(
        p.stripe_event("payout.failed", p.payout("po_later", created=p.CREATED + 2 * 86_400))
    )
    assert version(failed) < version(paid) < version(newer)
    assert failed.version == (p.CREATED, 1)
    assert paid.version == (p.CREATED + 86_400, 0)


def test_one_payout_paid_then_failed_still_opens() -> None:
    # Stripe: "Some payouts that fail might initially show as paid, then change to failed."
    paid = resolve_payout_incident(
        p.stripe_event("payout.paid", p.paid_payout("po_same", p.CREATED))
    )
    failed = open_payout_incident(p.stripe_event("payout.failed", p.payout("po_same")))
    assert paid.key == failed.key
    assert version(paid) < version(failed)


def test_payouts_are_keyed_per_account_and_destination() -> None:
    expanded = {"id": "card_1PQ1ZyLkdIwHu7ixK2s8Qz9D", "object": "card", "last4": "4242"}
    connect = open_payout_incident(
        p.stripe_event("payout.failed", p.payout(destination=expanded), account="acct_1One")
    )
    other_bank = open_payout_incident(
        p.stripe_event("payout.failed", p.payout(destination="ba_other"))
    )
    assert connect.key == "stripe:payout:acct_1One:card_1PQ1ZyLkdIwHu7ixK2s8Qz9D"
    assert other_bank.key == "stripe:payout:platform:ba_other"


def test_payout_without_destination_is_keyed_by_its_own_id() -> None:
    failed = open_payout_incident(p.stripe_event("payout.failed", p.payout(destination=None)))
    paid = resolve_payout_incident(p.stripe_event("payout.paid", p.paid_payout(destination=None)))
    assert failed.key == "stripe:payout:po_1PQ9AbLkdIwHu7ixq2H1ZsVu"
    assert paid.key == "stripe:payout:po_1PQDefLkdIwHu7ixR4n8VbQ2"
    assert "paid" in paid.note and " to " not in paid.note


def test_failed_payments_are_unordered_occurrences() -> None:
    intent = p.stripe_event("payment_intent.payment_failed", p.payment_intent_failed())
    invoice = p.stripe_event("invoice.payment_failed", p.invoice_failed())
    assert count_failed_payment(intent).version is None
    assert count_failed_payment(invoice).version is None


def test_fraud_warning_version_is_its_creation_time() -> None:
    event = p.stripe_event("radar.early_fraud_warning.created", p.early_fraud_warning())
    assert open_fraud_warning_incident(event).version == (p.CREATED,)


def ci(conclusion: str, run_number: int, attempt: int = 1) -> Trigger | None:
    payload = p.workflow_run(conclusion, "main", run_number=run_number, run_attempt=attempt)
    return track_ci_on_default_branch(payload)


def test_ci_fail_42_pass_43_then_a_late_fail_41_is_older() -> None:
    failed_42 = opened(ci("failure", 42))
    passed_43 = resolved(ci("success", 43))
    late_41 = opened(ci("failure", 41))
    assert failed_42.key == passed_43.key == late_41.key
    assert version(failed_42) < version(passed_43)
    assert version(late_41) < version(passed_43)  # stale when it arrives after 43
    assert passed_43.version == (43, 1)


def test_ci_success_51_delivered_before_failure_50_outranks_it() -> None:
    passed_51 = resolved(ci("success", 51))
    failed_50 = opened(ci("failure", 50))
    assert version(failed_50) < version(passed_51)


def test_ci_rerun_attempts_order_within_a_run() -> None:
    failed = opened(ci("failure", 42, attempt=1))
    rerun = resolved(ci("success", 42, attempt=2))
    assert (failed.version, rerun.version) == ((42, 1), (42, 2))
    assert "attempt 2" in rerun.note


def test_ci_without_run_number_is_unordered() -> None:
    payload = p.workflow_run("failure", "main")
    payload["workflow_run"]["run_number"] = None
    assert opened(track_ci_on_default_branch(payload)).version is None


def test_ci_without_run_attempt_counts_as_the_first() -> None:
    payload = p.workflow_run("failure", "main", run_number=42)
    del payload["workflow_run"]["run_attempt"]
    assert opened(track_ci_on_default_branch(payload)).version == (42, 1)


def test_deploy_versions_order_by_status_time_then_id() -> None:
    failed = opened(
        track_deploy_status(
            p.deployment_status(
                "failure", "production", status_id=100, created_at="2024-06-10T06:25:00Z"
            )
        )
    )
    succeeded = resolved(
        track_deploy_status(
            p.deployment_status(
                "success", "production", status_id=101, created_at="2024-06-10T06:40:00Z"
            )
        )
    )
    same_second = resolved(
        track_deploy_status(
            p.deployment_status(
                "success", "production", status_id=99, created_at="2024-06-10T06:25:00Z"
            )
        )
    )
    assert failed.version == (1_718_000_700, 100)
    assert version(failed) < version(succeeded)
    assert version(same_second) < version(failed)  # same second: the id breaks the tie


def test_deploy_version_falls_back() -> None:
    no_id = p.deployment_status("failure", "production", status_id=None)
    no_time = p.deployment_status("failure", "production", created_at=None)
    assert opened(track_deploy_status(no_id)).version == (1_718_000_700, 0)
    assert opened(track_deploy_status(no_time)).version is None


def test_code_scanning_fixed_resolves_the_same_key_naming_the_commit() -> None:
    created = opened(open_code_scanning_incident(p.code_scanning_alert(number=12)))
    fixed = resolved(
        resolve_code_scanning_incident(p.code_scanning_alert(number=12, action="fixed"))
    )
    assert fixed.key == created.key == "github:code-scanning:octo/app:12"
    assert fixed.note == "Code scanning alert #12 fixed in c5bf87a"
    assert fixed.actor == "github:github-advanced-security[bot]"


def test_code_scanning_fixed_without_a_time_of_its_own_is_unordered() -> None:
    # GitHub's `fixed` payload stamps no time of the fix; `created_at` would tie every later
    # fix of this alert with the first one, so the fix applies as it arrives instead.
    created = opened(open_code_scanning_incident(p.code_scanning_alert()))
    fixed = resolved(resolve_code_scanning_incident(p.code_scanning_alert(action="fixed")))
    assert created.version == (1_718_001_000, 0)
    assert fixed.version is None


def test_code_scanning_fixed_with_a_time_of_its_own_is_newer_than_created() -> None:
    created = opened(open_code_scanning_incident(p.code_scanning_alert()))
    payload = p.code_scanning_alert(action="fixed")
    payload["alert"]["fixed_at"] = p.FIXED_AT  # the REST alert object's field, if sent
    fixed = resolved(resolve_code_scanning_incident(payload))
    assert version(created) < version(fixed)
    payload["alert"]["updated_at"] = "2024-06-12T09:20:00Z"  # preferred when present
    assert resolve_code_scanning_incident(payload).version == (1_718_184_000, 1)


def test_code_scanning_closed_by_user_says_who_and_why() -> None:
    created = opened(open_code_scanning_incident(p.code_scanning_alert()))
    closed = resolved(
        resolve_code_scanning_incident(p.code_scanning_alert(action="closed_by_user"))
    )
    assert closed.key == created.key
    assert closed.note == (
        "Code scanning alert #7 dismissed by octocat: false positive (Input is validated upstream)"
    )
    assert closed.actor == "github:octocat"
    assert version(created) < version(closed)


@pytest.mark.parametrize("action", ["reopened", "reopened_by_user"])
def test_code_scanning_reopen_opens_the_same_key_unordered(action: str) -> None:
    created = opened(open_code_scanning_incident(p.code_scanning_alert()))
    reopened = opened(open_code_scanning_incident(p.code_scanning_alert(action=action)))
    assert reopened.key == created.key
    assert reopened.severity is created.severity
    assert reopened.title == created.title
    assert reopened.note.startswith("Code scanning alert #7 reopened by ")
    # No timestamp of the reopening in the payload: created_at would rank it below the close
    # it undoes, so it applies as it arrives.
    assert reopened.version is None


def test_code_scanning_reopen_with_updated_at_is_ordered() -> None:
    payload = p.code_scanning_alert(action="reopened_by_user")
    payload["alert"]["updated_at"] = "2024-06-13T08:00:00Z"
    assert opened(open_code_scanning_incident(payload)).version == (1_718_265_600, 0)


def test_secret_scanning_resolved_names_who_and_the_resolution() -> None:
    created = opened(open_secret_leak_incident(p.secret_scanning_alert()))
    resolution = resolved(resolve_secret_leak_incident(p.secret_scanning_alert(action="resolved")))
    assert resolution.key == created.key == "github:secret-scanning:octo/app:3"
    assert resolution.note == (
        "Secret scanning alert #3 resolved by octocat: revoked (Rotated in the dashboard)"
    )
    assert version(created) < version(resolution)


def test_secret_scanning_false_positive_is_worded() -> None:
    payload = p.secret_scanning_alert(action="resolved", resolution="false_positive")
    assert "resolved by octocat: false positive" in resolve_secret_leak_incident(payload).note


def test_secret_scanning_reopened_opens_again_newer_than_the_resolution() -> None:
    resolution = resolve_secret_leak_incident(p.secret_scanning_alert(action="resolved"))
    reopened = opened(
        open_secret_leak_incident(
            p.secret_scanning_alert(action="reopened", updated_at="2024-06-13T08:00:00Z")
        )
    )
    assert reopened.key == resolution.key
    assert reopened.severity is Severity.SEV1
    assert reopened.note == "Secret scanning alert #3 reopened by octocat"
    assert version(resolution) < version(reopened)


def test_secret_scanning_reopen_without_updated_at_is_unordered() -> None:
    payload = p.secret_scanning_alert(action="reopened")
    payload["alert"]["updated_at"] = None
    assert opened(open_secret_leak_incident(payload)).version is None


def test_secret_scanning_resolved_without_updated_at_uses_resolved_at() -> None:
    payload = p.secret_scanning_alert(action="resolved")
    payload["alert"]["updated_at"] = None
    assert resolve_secret_leak_incident(payload).version == (1_718_183_700, 1)


@pytest.mark.parametrize(
    ("action", "note"),
    [
        ("fixed", "Dependabot alert #12 fixed"),
        (
            "dismissed",
            "Dependabot alert #12 dismissed by octocat: tolerable risk"
            " (Templates are never user-supplied)",
        ),
        ("auto_dismissed", "Dependabot alert #12 auto-dismissed"),
    ],
)
def test_dependabot_closing_actions_resolve_the_same_key(action: str, note: str) -> None:
    created = opened(open_vulnerable_dependency_incident(p.dependabot_alert()))
    closing = resolved(resolve_vulnerable_dependency_incident(p.dependabot_alert(action=action)))
    assert closing.key == created.key == "github:dependabot:octo/app:12"
    assert closing.note == note
    assert version(created) < version(closing)
    assert closing.version == (1_718_183_700, 1)


def test_dependabot_auto_dismissed_in_the_second_it_was_created_is_still_newer() -> None:
    created = opened(open_vulnerable_dependency_incident(p.dependabot_alert()))
    same_second = p.dependabot_alert(action="auto_dismissed", updated_at="2024-06-10T06:50:00Z")
    dismissed = resolved(resolve_vulnerable_dependency_incident(same_second))
    assert version(created) < version(dismissed)


@pytest.mark.parametrize("action", ["reopened", "auto_reopened", "reintroduced"])
def test_dependabot_reopens_open_the_same_key_after_the_close(action: str) -> None:
    closed = resolve_vulnerable_dependency_incident(p.dependabot_alert(action="dismissed"))
    reopened = opened(
        open_vulnerable_dependency_incident(
            p.dependabot_alert(action=action, updated_at="2024-06-13T08:00:00Z")
        )
    )
    assert reopened.key == closed.key
    assert reopened.severity is Severity.SEV1
    assert version(closed) < version(reopened)


def test_alert_versions_without_any_timestamp_are_unordered() -> None:
    payload = p.dependabot_alert(action="fixed")
    for field in ("updated_at", "fixed_at", "created_at"):
        payload["alert"][field] = None
    assert resolve_vulnerable_dependency_incident(payload).version is None


def test_issue_close_is_newer_than_its_label_even_in_the_same_second() -> None:
    same = "2024-06-10T07:05:00Z"
    label = opened(mirror_incident_issue(p.issue_event("labeled", ["incident"], updated_at=same)))
    close = resolved(mirror_incident_issue(p.issue_event("closed", ["incident"], updated_at=same)))
    assert label.version == (1_718_003_100, 0)
    assert close.version == (1_718_003_100, 1)
    assert version(label) < version(close)


def test_an_issue_labelled_again_after_its_close_is_newer() -> None:
    close = mirror_incident_issue(p.issue_event("closed", ["incident"]))
    relabel = mirror_incident_issue(
        p.issue_event("labeled", ["incident"], updated_at="2024-06-11T07:00:00Z")
    )
    assert version(close) < version(relabel)


# --- The routing table --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        ("stripe", "payout.paid"),
        ("github", "code_scanning_alert.fixed"),
        ("github", "code_scanning_alert.closed_by_user"),
        ("github", "code_scanning_alert.reopened"),
        ("github", "code_scanning_alert.reopened_by_user"),
        ("github", "secret_scanning_alert.resolved"),
        ("github", "secret_scanning_alert.reopened"),
        ("github", "dependabot_alert.fixed"),
        ("github", "dependabot_alert.dismissed"),
        ("github", "dependabot_alert.auto_dismissed"),
        ("github", "dependabot_alert.reopened"),
        ("github", "dependabot_alert.auto_reopened"),
        ("github", "dependabot_alert.reintroduced"),
    ],
)
def test_every_closing_and_reopening_action_is_routed(kind: tuple[str, str]) -> None:
    assert len(ROUTES[kind]) == 1


def test_code_scanning_appeared_in_branch_is_not_routed() -> None:
    assert ("github", "code_scanning_alert.appeared_in_branch") not in ROUTES
