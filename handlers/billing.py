"""Stripe events that mean money is at risk: disputes, failed payouts, failed payments, fraud.

Each function takes a Stripe event object (`{"id", "type", "account"?, "livemode",
"data": {"object": {...}}}`) and returns a Trigger or None. Amounts are in the currency's
minor unit, as Stripe sends them; handlers.triggers.payload.format_amount shows them in
major units."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from handlers.triggers.model import Change, Link, Severity, Trigger
from handlers.triggers.payload import (
    format_amount,
    opt_bool,
    opt_int,
    opt_ref,
    opt_str,
    req_map,
    req_str,
)

ACTOR = "stripe"
DASHBOARD = "https://dashboard.stripe.com/"
# Closed dispute statuses worth a word of their own; anything else is shown as is.
DISPUTE_OUTCOMES = {"won": "won", "lost": "lost", "warning_closed": "closed (inquiry only)"}


def open_dispute_incident(event: Mapping[str, object]) -> Trigger:
    """`charge.dispute.created`: a customer disputed a charge (sev2, one incident per dispute)."""
    dispute = req_map(event, "data.object")
    dispute_id = req_str(dispute, "id")
    amount = format_amount(opt_int(dispute, "amount"), opt_str(dispute, "currency"))
    reason = (opt_str(dispute, "reason") or "unknown reason").replace("_", " ")
    charge = opt_ref(dispute, "charge") or "unknown charge"
    details = [f"Dispute {dispute_id} on charge {charge}: {amount}, reason: {reason}."]
    due_by = opt_int(dispute, "evidence_details.due_by")
    if due_by is not None:
        details.append(f"Evidence due by {_utc(due_by)}.")
    status = opt_str(dispute, "status")
    if status is not None:
        details.append(f"Status: {status.replace('_', ' ')}.")
    return Trigger(
        change=Change.OPEN,
        key=dispute_key(dispute_id),
        actor=ACTOR,
        title=f"Dispute opened: {amount} ({reason}) on {charge}",
        severity=Severity.SEV2,
        summary=" ".join(details),
        links=(Link("Dispute in Stripe", _dashboard(event, f"disputes/{dispute_id}")),),
        note=f"Stripe opened dispute {dispute_id} for {amount}",
    )


def resolve_dispute_incident(event: Mapping[str, object]) -> Trigger:
    """`charge.dispute.closed`: the dispute is decided; the note says won or lost."""
    dispute = req_map(event, "data.object")
    dispute_id = req_str(dispute, "id")
    status = opt_str(dispute, "status")
    outcome = DISPUTE_OUTCOMES.get(status or "", (status or "unknown").replace("_", " "))
    amount = format_amount(opt_int(dispute, "amount"), opt_str(dispute, "currency"))
    return Trigger(
        change=Change.RESOLVE,
        key=dispute_key(dispute_id),
        actor=ACTOR,
        note=f"Dispute {dispute_id} closed: {outcome} ({amount})",
    )


def open_payout_incident(event: Mapping[str, object]) -> Trigger:
    """`payout.failed`: money did not reach the bank account (sev1, one incident per payout)."""
    payout = req_map(event, "data.object")
    payout_id = req_str(payout, "id")
    amount = format_amount(opt_int(payout, "amount"), opt_str(payout, "currency"))
    code = opt_str(payout, "failure_code") or "unknown failure"
    message = opt_str(payout, "failure_message")
    details = [f"Payout {payout_id} of {amount} failed: {code}."]
    if message is not None:
        details.append(message)
    destination = opt_ref(payout, "destination")
    if destination is not None:
        details.append(f"Destination: {destination}.")
    account = opt_str(event, "account")
    if account is not None:
        details.append(f"Connected account: {account}.")
    return Trigger(
        change=Change.OPEN,
        key=f"stripe:payout:{payout_id}",
        actor=ACTOR,
        title=f"Payout failed: {amount} ({code})",
        severity=Severity.SEV1,
        summary=" ".join(details),
        links=(Link("Payout in Stripe", _dashboard(event, f"payouts/{payout_id}")),),
        note=f"Payout {payout_id} of {amount} failed: {code}",
    )


def count_failed_payment(event: Mapping[str, object]) -> Trigger:
    """`payment_intent.payment_failed` and `invoice.payment_failed`: one incident per account.

    Both event types share the key, so a burst of failures is one incident whose occurrence
    count grows; each event's note describes that failure."""
    obj = req_map(event, "data.object")
    object_id = req_str(obj, "id")
    account = opt_str(event, "account") or "platform"
    if _is_invoice(event, obj):
        latest, link = _invoice_failure(event, obj, object_id)
    else:
        latest, link = _payment_intent_failure(event, obj, object_id)
    return Trigger(
        change=Change.OPEN,
        key=f"stripe:failed-payments:{account}",
        actor=ACTOR,
        title=f"Failed payments on {account}",
        severity=Severity.SEV3,
        summary=f"Latest failure: {latest}",
        links=(link,),
        note=f"Payment failed: {latest}",
    )


def open_fraud_warning_incident(event: Mapping[str, object]) -> Trigger:
    """`radar.early_fraud_warning.created`: an issuer reports a charge as fraudulent (sev2)."""
    warning = req_map(event, "data.object")
    warning_id = req_str(warning, "id")
    fraud_type = (opt_str(warning, "fraud_type") or "unspecified").replace("_", " ")
    charge = opt_ref(warning, "charge")
    payment = opt_ref(warning, "payment_intent") or charge
    details = [f"Early fraud warning {warning_id}: {fraud_type} on charge {charge or 'unknown'}."]
    actionable = opt_bool(warning, "actionable")
    if actionable is True:
        details.append("Actionable: refund the charge to avoid a dispute.")
    elif actionable is False:
        details.append("Not actionable: already refunded or disputed.")
    links = (
        (Link("Payment in Stripe", _dashboard(event, f"payments/{payment}")),) if payment else ()
    )
    return Trigger(
        change=Change.OPEN,
        key=f"stripe:fraud-warning:{warning_id}",
        actor=ACTOR,
        title=f"Fraud warning: {fraud_type} on {charge or 'a charge'}",
        severity=Severity.SEV2,
        summary=" ".join(details),
        links=links,
        note=f"Radar early fraud warning {warning_id} ({fraud_type})",
    )


def dispute_key(dispute_id: str) -> str:
    return f"stripe:dispute:{dispute_id}"


def _is_invoice(event: Mapping[str, object], obj: Mapping[str, object]) -> bool:
    kind = opt_str(event, "type")
    if kind is not None:
        return kind.startswith("invoice.")
    return opt_str(obj, "object") == "invoice"


def _payment_intent_failure(
    event: Mapping[str, object], intent: Mapping[str, object], intent_id: str
) -> tuple[str, Link]:
    amount = format_amount(opt_int(intent, "amount"), opt_str(intent, "currency"))
    error = opt_str(intent, "last_payment_error.message") or "no error message"
    code = opt_str(intent, "last_payment_error.decline_code") or opt_str(
        intent, "last_payment_error.code"
    )
    reason = f"{error} ({code})" if code else error
    customer = opt_ref(intent, "customer") or "no customer"
    latest = f"payment {intent_id} of {amount} for {customer}: {reason}"
    return latest, Link("Payment in Stripe", _dashboard(event, f"payments/{intent_id}"))


def _invoice_failure(
    event: Mapping[str, object], invoice: Mapping[str, object], invoice_id: str
) -> tuple[str, Link]:
    amount = format_amount(opt_int(invoice, "amount_due"), opt_str(invoice, "currency"))
    customer = opt_str(invoice, "customer_email") or opt_ref(invoice, "customer") or "no customer"
    number = opt_str(invoice, "number") or invoice_id
    latest = f"invoice {number} of {amount} for {customer}"
    attempts = opt_int(invoice, "attempt_count")
    if attempts is not None:
        latest += f", attempt {attempts}"
    next_attempt = opt_int(invoice, "next_payment_attempt")
    latest += f", next retry {_utc(next_attempt)}" if next_attempt else ", no retry scheduled"
    return latest, Link("Invoice in Stripe", _dashboard(event, f"invoices/{invoice_id}"))


def _dashboard(event: Mapping[str, object], path: str) -> str:
    """A Stripe dashboard URL; test-mode objects live under /test/."""
    livemode = opt_bool(event, "livemode")
    if livemode is None:
        livemode = opt_bool(event, "data.object.livemode")
    return f"{DASHBOARD}{'test/' if livemode is False else ''}{path}"


def _utc(timestamp: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return f"timestamp {timestamp}"
