"""Which workflows run for which event: a plain table, read top to bottom.

An event whose (provider, type) is not here is stored and marked `ignored`. A trigger
function (payload in, decision out) becomes a workflow through `incident_workflow`."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Mapping

from handlers import billing, chatops, delivery, security, system
from handlers.context import Workflow
from handlers.triggers.current import confirmed as now
from handlers.triggers.current import fetched as thin
from handlers.triggers.ruled import RULES_ONLY
from handlers.triggers.workflow import incident_workflow as on
from hub.rules.state import RuleSet

Routes = Mapping[tuple[str, str], tuple[Workflow, ...]]

DISPUTE_NOW = (billing.dispute_now, "dispute")
PAYOUT_NOW = (billing.payout_now, "payout")

ROUTES: Routes = {
    # Billing (Stripe). With HUB_STRIPE_API_KEY, disputes and payouts decide from the object's
    # current state (handlers/triggers/current.py); without, or if Stripe cannot say, by type.
    ("stripe", "charge.dispute.created"): (now(billing.open_dispute_incident, *DISPUTE_NOW),),
    ("stripe", "charge.dispute.closed"): (now(billing.resolve_dispute_incident, *DISPUTE_NOW),),
    ("stripe", "payout.failed"): (now(billing.open_payout_incident, *PAYOUT_NOW),),
    # A failed payout is resolved when a later payout to the same destination is paid.
    ("stripe", "payout.paid"): (now(billing.resolve_payout_incident, *PAYOUT_NOW),),
    ("stripe", "payment_intent.payment_failed"): (on(billing.count_failed_payment),),
    ("stripe", "invoice.payment_failed"): (on(billing.count_failed_payment),),
    ("stripe", "radar.early_fraud_warning.created"): (on(billing.open_fraud_warning_incident),),
    # Stripe's thin events (event destinations, `v2.core.event`) for the same v1 kinds: they
    # carry a reference, so the related object is fetched and decided from. Subscribe a
    # destination to one payload style or the other: a failed payment sent both ways counts
    # twice (disputes and payouts are versioned, so their second copy is stale).
    ("stripe", "v1.charge.dispute.created"): (thin(billing.dispute_now),),
    ("stripe", "v1.charge.dispute.closed"): (thin(billing.dispute_now),),
    ("stripe", "v1.payout.failed"): (thin(billing.payout_now),),
    ("stripe", "v1.payout.paid"): (thin(billing.payout_now),),
    ("stripe", "v1.payment_intent.payment_failed"): (thin(billing.count_failed_payment),),
    ("stripe", "v1.invoice.payment_failed"): (thin(billing.count_failed_payment),),
    ("stripe", "v1.radar.early_fraud_warning.created"): (
        thin(billing.open_fraud_warning_incident),
    ),
    # Delivery (GitHub CI and deployments)
    ("github", "workflow_run.completed"): (on(delivery.track_ci_on_default_branch),),
    ("github", "deployment_status.created"): (on(delivery.track_deploy_status),),
    # Security: code scanning alerts (`appeared_in_branch` is left unrouted: not news)
    ("github", "code_scanning_alert.created"): (on(security.open_code_scanning_incident),),
    ("github", "code_scanning_alert.reopened"): (on(security.open_code_scanning_incident),),
    ("github", "code_scanning_alert.reopened_by_user"): (on(security.open_code_scanning_incident),),
    ("github", "code_scanning_alert.fixed"): (on(security.resolve_code_scanning_incident),),
    ("github", "code_scanning_alert.closed_by_user"): (
        on(security.resolve_code_scanning_incident),
    ),
    # Security: secret scanning alerts
    ("github", "secret_scanning_alert.created"): (on(security.open_secret_leak_incident),),
    ("github", "secret_scanning_alert.reopened"): (on(security.open_secret_leak_incident),),
    ("github", "secret_scanning_alert.resolved"): (on(security.resolve_secret_leak_incident),),
    # Security: Dependabot alerts
    ("github", "dependabot_alert.created"): (on(security.open_vulnerable_dependency_incident),),
    ("github", "dependabot_alert.reopened"): (on(security.open_vulnerable_dependency_incident),),
    ("github", "dependabot_alert.auto_reopened"): (
        on(security.open_vulnerable_dependency_incident),
    ),
    ("github", "dependabot_alert.reintroduced"): (
        on(security.open_vulnerable_dependency_incident),
    ),
    ("github", "dependabot_alert.fixed"): (on(security.resolve_vulnerable_dependency_incident),),
    ("github", "dependabot_alert.dismissed"): (
        on(security.resolve_vulnerable_dependency_incident),
    ),
    ("github", "dependabot_alert.auto_dismissed"): (
        on(security.resolve_vulnerable_dependency_incident),
    ),
    # Issues labelled `incident`
    ("github", "issues.labeled"): (on(security.mirror_incident_issue),),
    ("github", "issues.closed"): (on(security.mirror_incident_issue),),
    # Chatops (Slack)
    ("slack", "block_actions"): (chatops.apply_incident_button,),
    ("slack", "/incident"): (chatops.run_incident_command,),
    # The hub's own connections
    ("github", "ping"): (system.acknowledge_ping,),
}


class RoutesWithRules:
    """The table above, plus the kinds only routing rules handle (an `incident` rule's match
    or `resolve_when`), which run RULES_ONLY: the rules decide those alone."""

    def __init__(self, routes: Routes, rules: RuleSet) -> None:
        self.routes, self.rules = routes, rules
        self._exact, self._patterns = _rule_kinds(tuple(rules.kinds()))

    def get(self, provider: str, type_: str) -> tuple[Workflow, ...]:
        found = self.routes.get((provider, type_))
        if found:
            return found
        kind = f"{provider}:{type_}"
        if kind in self._exact or any(p.match(kind) for p in self._patterns):
            return (RULES_ONLY,)
        return ()

    def exact_kinds(self) -> list[str] | None:
        """Every routed kind, for the claim to mark the rest `ignored`; None when a rule's
        glob makes the set open-ended (then the router decides each event)."""
        if self._patterns:
            return None
        return [f"{p}:{t}" for p, t in self.routes] + sorted(self._exact)


@functools.lru_cache(maxsize=8)
def _rule_kinds(kinds: tuple[str, ...]) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    globbed = tuple(re.compile(fnmatch.translate(k)) for k in kinds if any(c in k for c in "*?"))
    return frozenset(k for k in kinds if not any(c in k for c in "*?")), globbed
