"""The cases issue #13 found, through the real routing table and catalogue, on SQLite and
PostgreSQL: each used to end with a live incident that should not exist."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.context import WorkflowContext
from handlers.dispatch import route_events
from handlers.routing_table import ROUTES
from hub.events.store import attempts
from tests.handlers import payloads as p
from tests.handlers.conftest import all_incidents, effects_of, rows, store_event, timeline_of


@pytest.fixture
def ctx(any_ctx: WorkflowContext) -> WorkflowContext:
    return any_ctx


def deliver(ctx: WorkflowContext, provider: str, kind: str, payload: dict[str, Any]) -> str:
    """Stored and run as a worker runs it: claimed, routed by the table, settled."""
    event_id = store_event(ctx, provider, kind, payload)
    route_events(ctx, [event_id], ROUTES)
    return event_id


def github(ctx: WorkflowContext, event: str, payload: dict[str, Any]) -> str:
    return deliver(ctx, "github", f"{event}.{payload['action']}", payload)


def stripe(ctx: WorkflowContext, kind: str, obj: dict[str, Any], n: int) -> str:
    return deliver(ctx, "stripe", kind, p.stripe_event(kind, obj, event_id=f"evt_{kind}_{n}"))


def live(ctx: WorkflowContext) -> list[Any]:
    return [i for i in all_incidents(ctx) if i.status != "resolved"]


def outcome_of(ctx: WorkflowContext, event_id: str) -> str:
    (attempt,) = rows(ctx, attempts, attempts.c.event_id == event_id)
    return str(attempt.outcome)


def test_a_dispute_closed_before_it_was_created(ctx):
    closed = stripe(ctx, "charge.dispute.closed", p.dispute(status="won"), 1)
    created = stripe(ctx, "charge.dispute.created", p.dispute(), 2)
    assert live(ctx) == []
    assert outcome_of(ctx, closed) == "ok" and outcome_of(ctx, created) == "stale"
    assert effects_of(ctx) == []  # no message for a dispute that was already won


def test_ci_42_red_43_green_then_41_red_late(ctx):
    def run(n: int, conclusion: str) -> str:
        return github(ctx, "workflow_run", p.workflow_run(conclusion, "main", run_number=n))

    run(42, "failure")
    run(43, "success")
    late = run(41, "failure")
    assert live(ctx) == []
    (incident,) = all_incidents(ctx)
    assert [t.action for t in timeline_of(ctx, incident.id)] == ["opened", "resolved", "stale"]
    assert outcome_of(ctx, late) == "stale"


def test_ci_51_green_delivered_before_50_red(ctx):
    github(ctx, "workflow_run", p.workflow_run("success", "main", run_number=51))
    github(ctx, "workflow_run", p.workflow_run("failure", "main", run_number=50))
    assert live(ctx) == []


@pytest.mark.parametrize("action", ["fixed", "closed_by_user"])
def test_a_code_scanning_alert_closed_on_github_resolves_its_incident(ctx, action):
    github(ctx, "code_scanning_alert", p.code_scanning_alert(action="created"))
    github(ctx, "code_scanning_alert", p.code_scanning_alert(action=action))
    assert live(ctx) == []
    (incident,) = all_incidents(ctx)
    resolved = timeline_of(ctx, incident.id)[-1]
    assert resolved.action == "resolved" and resolved.detail


def test_a_fixed_dependabot_alert_resolves_and_a_reopen_opens_again(ctx):
    alert = p.dependabot_alert
    github(ctx, "dependabot_alert", alert(action="created", updated_at="2024-06-10T06:00:00Z"))
    github(ctx, "dependabot_alert", alert(action="fixed", updated_at="2024-06-11T06:00:00Z"))
    assert live(ctx) == []
    github(ctx, "dependabot_alert", alert(action="reopened", updated_at="2024-06-12T06:00:00Z"))
    assert len(live(ctx)) == 1


def test_a_failed_payout_is_resolved_by_a_later_paid_payout_to_the_same_account(ctx):
    stripe(ctx, "payout.failed", p.payout(), 1)
    stripe(ctx, "payout.paid", p.paid_payout(), 2)
    assert live(ctx) == []


def test_the_grouped_failed_payments_link_points_at_the_latest_failure(ctx):
    for n in range(3):
        intent = p.payment_intent_failed(intent_id=f"pi_{n}")
        kind = "payment_intent.payment_failed"
        deliver(ctx, "stripe", kind, p.stripe_event(kind, intent, account="acct_1",
                                                    event_id=f"evt_pf_{n}"))  # fmt: skip
    (incident,) = all_incidents(ctx)
    assert incident.occurrences == 3
    assert "pi_2" in incident.summary
    assert any("pi_2" in link["url"] for link in incident.links)
    assert not any("pi_0" in link["url"] for link in incident.links)
