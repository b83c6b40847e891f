"""Events become incidents once: grouping, occurrences, resolution, and the side effects each
change owes, recorded with it. Workflows run twice must change nothing the second time."""

from __future__ import annotations

from handlers import billing, delivery
from handlers.context import WorkflowContext
from handlers.triggers.apply import change_status
from handlers.triggers.workflow import incident_workflow
from hub.incidents.changes import StatusChange
from tests.handlers import payloads as p
from tests.handlers.conftest import all_incidents, effects_of, store_event, timeline_of

open_dispute = incident_workflow(billing.open_dispute_incident)
close_dispute = incident_workflow(billing.resolve_dispute_incident)
failed_payment = incident_workflow(billing.count_failed_payment)
ci = incident_workflow(delivery.track_ci_on_default_branch)


def kinds(ctx: WorkflowContext, incident_id: str) -> list[str]:
    return [e.kind for e in effects_of(ctx, incident_id)]


def test_a_dispute_opens_one_incident_and_owes_one_slack_post(ctx):
    event_id = store_event(ctx, "stripe", "charge.dispute.created",
                           p.stripe_event("charge.dispute.created", p.dispute()))  # fmt: skip
    open_dispute(ctx, event_id)
    open_dispute(ctx, event_id)  # a retry, a redelivery or a replay

    (incident,) = all_incidents(ctx)
    assert (incident.status, incident.severity, incident.occurrences) == ("open", "sev2", 1)
    assert incident.key == "stripe:dispute:dp_1PQ8xvLkdIwHu7ixW0e5kT6p"
    assert kinds(ctx, incident.id) == ["slack.post"]
    assert [t.action for t in timeline_of(ctx, incident.id)] == ["opened"]


def test_the_closed_dispute_resolves_it_once_with_a_thread_reply(ctx):
    opened = store_event(ctx, "stripe", "charge.dispute.created",
                         p.stripe_event("charge.dispute.created", p.dispute()))  # fmt: skip
    won = p.stripe_event("charge.dispute.closed", p.dispute(status="won"))
    closed = store_event(ctx, "stripe", "charge.dispute.closed", won)
    open_dispute(ctx, opened)
    close_dispute(ctx, closed)
    close_dispute(ctx, closed)

    (incident,) = all_incidents(ctx)
    assert incident.status == "resolved" and incident.resolved_by == "stripe"
    assert kinds(ctx, incident.id) == ["slack.post", "slack.update", "slack.reply"]
    assert [t.action for t in timeline_of(ctx, incident.id)] == ["opened", "resolved"]


def test_a_burst_of_failed_payments_is_one_incident_with_a_count_and_one_pending_update(ctx):
    for n in range(30):
        intent = p.payment_intent_failed(intent_id=f"pi_{n}")
        event = p.stripe_event("payment_intent.payment_failed", intent, account="acct_1",
                               event_id=f"evt_{n}")  # fmt: skip
        failed_payment(ctx, store_event(ctx, "stripe", event["type"], event))
    (incident,) = all_incidents(ctx)
    assert incident.occurrences == 30
    # One post and one coalesced update, however many occurrences.
    assert kinds(ctx, incident.id) == ["slack.post", "slack.update"]


def test_another_account_is_another_incident(ctx):
    for account in ("acct_1", "acct_2"):
        event = p.stripe_event("invoice.payment_failed", p.invoice_failed(), account=account)
        failed_payment(ctx, store_event(ctx, "stripe", event["type"], event))
    assert len(all_incidents(ctx)) == 2


def test_ci_red_then_green_opens_and_resolves_and_red_again_opens_a_new_incident(ctx):
    for run, conclusion in enumerate(("failure", "failure", "success", "failure"), start=42):
        payload = p.workflow_run(conclusion, "main", run_number=run)
        ci(ctx, store_event(ctx, "github", "workflow_run.completed", payload))
    first, second = all_incidents(ctx)
    assert (first.status, first.occurrences) == ("resolved", 2)
    assert (second.status, second.occurrences) == ("open", 1)


def test_a_feature_branch_failure_opens_nothing(ctx):
    ci(ctx, store_event(ctx, "github", "workflow_run.completed", p.workflow_run("failure", "wip")))
    assert all_incidents(ctx) == []


def test_status_changes_follow_the_lifecycle_and_are_applied_once_per_cause(ctx):
    event = store_event(ctx, "stripe", "charge.dispute.created",
                        p.stripe_event("charge.dispute.created", p.dispute()))  # fmt: skip
    open_dispute(ctx, event)
    (incident,) = all_incidents(ctx)

    ack = change_status(ctx, incident.id, StatusChange("acknowledged", "<@U1>", "press-1"))
    again = change_status(ctx, incident.id, StatusChange("acknowledged", "<@U1>", "press-1"))
    other = change_status(ctx, incident.id, StatusChange("acknowledged", "<@U2>", "press-2"))
    resolved = change_status(ctx, incident.id, StatusChange("resolved", "<@U2>", "press-3"))
    assert (ack.changed, again.changed, other.changed, resolved.changed) == (
        True,
        False,
        False,
        True,
    )
    assert other.message == "already acknowledged by <@U1>"
    assert [t.action for t in timeline_of(ctx, incident.id)] == [
        "opened",
        "acknowledged",
        "resolved",
    ]
    replies = [e.payload["text"] for e in effects_of(ctx, incident.id) if e.kind == "slack.reply"]
    assert replies == ["Acknowledged by <@U1>", "Resolved by <@U2>"]


def test_an_unknown_incident_changes_nothing(ctx):
    outcome = change_status(ctx, "inc_nope", StatusChange("resolved", "<@U1>", "press-1"))
    assert not outcome.changed and outcome.incident_id is None
