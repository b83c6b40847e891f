"""Which workflows run for which event: a plain table, read top to bottom.

An event whose (provider, type) is not here is stored and marked `ignored`. A trigger
function (payload in, decision out) becomes a workflow through `incident_workflow`."""

from __future__ import annotations

from collections.abc import Mapping

from handlers import billing, chatops, delivery, security, system
from handlers.context import Workflow
from handlers.triggers.workflow import incident_workflow as on

Routes = Mapping[tuple[str, str], tuple[Workflow, ...]]

ROUTES: Routes = {
    # Billing (Stripe)
    ("stripe", "charge.dispute.created"): (on(billing.open_dispute_incident),),
    ("stripe", "charge.dispute.closed"): (on(billing.resolve_dispute_incident),),
    ("stripe", "payout.failed"): (on(billing.open_payout_incident),),
    ("stripe", "payment_intent.payment_failed"): (on(billing.count_failed_payment),),
    ("stripe", "invoice.payment_failed"): (on(billing.count_failed_payment),),
    ("stripe", "radar.early_fraud_warning.created"): (on(billing.open_fraud_warning_incident),),
    # Delivery (GitHub CI and deployments)
    ("github", "workflow_run.completed"): (on(delivery.track_ci_on_default_branch),),
    ("github", "deployment_status.created"): (on(delivery.track_deploy_status),),
    # Security (GitHub alerts, and issues labelled `incident`)
    ("github", "code_scanning_alert.created"): (on(security.open_code_scanning_incident),),
    ("github", "secret_scanning_alert.created"): (on(security.open_secret_leak_incident),),
    ("github", "dependabot_alert.created"): (on(security.open_vulnerable_dependency_incident),),
    ("github", "issues.labeled"): (on(security.mirror_incident_issue),),
    ("github", "issues.closed"): (on(security.mirror_incident_issue),),
    # Chatops (Slack)
    ("slack", "block_actions"): (chatops.apply_incident_button,),
    ("slack", "/incident"): (chatops.run_incident_command,),
    # The hub's own connections
    ("github", "ping"): (system.acknowledge_ping,),
}
