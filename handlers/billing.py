"""Stripe events that mean money is at risk: disputes, failed payouts, failed payments, fraud.

Each function takes a Stripe event object (`{"id", "type", "account"?, "livemode",
"data": {"object": {...}}}`) and returns a Trigger or None. Amounts are in the currency's
minor unit, as Stripe sends them; handlers.triggers.payload.format_amount shows them in
major units."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from handlers.triggers.model import Change, Link, Severity, Trigger, Version
from handlers.triggers.payload import (
    format_amount,
    opt_bool,
    opt_epoch,
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
# A dispute's statuses before it is decided; every other status (won, lost, warning_closed,
# and any Stripe adds later) is final. https://docs.stripe.com/api/disputes/object#dispute_object-status
DISPUTE_OPEN_STATUSES = frozenset(
    {"warning_needs_response", "warning_under_review", "needs_response", "under_review"}
)
# Version ranks: what comes later in an object's life ranks higher.
DISPUTE_OPEN, DISPUTE_CLOSED = 0, 1
# Stripe: "Some payouts that fail might initially show as paid, then change to failed", so for
# one payout `failed` is the later state. https://docs.stripe.com/api/payouts/object
PAYOUT_PAID, PAYOUT_FAILED = 0, 1


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
        # A dispute only moves from open statuses to closed ones, so its status rank orders
        # its events; a second `created` for the same dispute is equal, hence stale.
        version=_dispute_version(status, DISPUTE_OPEN),
    )


def resolve_dispute_incident(event: Mapping[str, object]) -> Trigger:
    """`charge.dispute.closed`: the dispute is decided, whatever the outcome; the note says
    which (won, lost, or an inquiry closed)."""
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
        # Closed statuses rank above open ones: a `closed` delivered first outranks the
        # `created` that comes after it.
        version=_dispute_version(status, DISPUTE_CLOSED),
    )


def open_payout_incident(event: Mapping[str, object]) -> Trigger:
    """`payout.failed`: money did not reach the bank account (sev1, one incident per
    destination, so that a later payout paid to the same destination resolves it)."""
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
        key=payout_key(event, payout, payout_id),
        actor=ACTOR,
        title=f"Payout failed: {amount} ({code})",
        severity=Severity.SEV1,
        summary=" ".join(details),
        links=(Link("Payout in Stripe", _dashboard(event, f"payouts/{payout_id}")),),
        note=f"Payout {payout_id} of {amount} failed: {code}",
        # The payout's own creation time orders payouts to one destination; `failed` ranks
        # above `paid` because Stripe can report a payout paid and then failed.
        version=_payout_version(payout, PAYOUT_FAILED),
    )


def resolve_payout_incident(event: Mapping[str, object]) -> Trigger:
    """`payout.paid`: a failed payout is resolved when a later payout to the same destination
    is paid (an older failed payout delivered after it is stale)."""
    payout = req_map(event, "data.object")
    payout_id = req_str(payout, "id")
    amount = format_amount(opt_int(payout, "amount"), opt_str(payout, "currency"))
    destination = opt_ref(payout, "destination")
    where = f" to {destination}" if destination is not None else ""
    return Trigger(
        change=Change.RESOLVE,
        key=payout_key(event, payout, payout_id),
        actor=ACTOR,
        note=f"Payout {payout_id} of {amount} paid{where}",
        # Same meaning as the failed payout's version: (payout created, rank), paid below
        # failed so that one payout's failure after its `paid` still opens.
        version=_payout_version(payout, PAYOUT_PAID),
    )


def dispute_now(event: Mapping[str, object]) -> Trigger:
    """The dispute as Stripe reports it now (handlers.triggers.current put the fetched object
    in `data.object`): open while undecided, resolved once closed, whatever the event's type;
    without a status, the type decides."""
    status = opt_str(req_map(event, "data.object"), "status")
    if status is None:
        closed = (opt_str(event, "type") or "").endswith(".closed")
    else:
        closed = status not in DISPUTE_OPEN_STATUSES
    return resolve_dispute_incident(event) if closed else open_dispute_incident(event)


def payout_now(event: Mapping[str, object]) -> Trigger | None:
    """The payout as Stripe reports it now: `failed` opens, `paid` resolves (a later payout
    paid to the same destination). Pending, in transit or canceled: neither, so nothing."""
    status = opt_str(req_map(event, "data.object"), "status")
    if status == "failed":
        return open_payout_incident(event)
    if status == "paid":
        return resolve_payout_incident(event)
    return None


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
        # Unordered on purpose: each failure is an occurrence of the burst and counts.
        version=None,
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
        # A warning is created once: its own creation time makes a duplicate delivery stale.
        version=_created_version(warning),
    )


def dispute_key(dispute_id: str) -> str:
    return f"stripe:dispute:{dispute_id}"


def payout_key(event: Mapping[str, object], payout: Mapping[str, object], payout_id: str) -> str:
    """Per account and destination (bank account or card), `destination` being an id or an
    expanded object; a payout without a destination is keyed by its own id."""
    destination = opt_ref(payout, "destination")
    if destination is None:
        return f"stripe:payout:{payout_id}"
    return f"stripe:payout:{opt_str(event, 'account') or 'platform'}:{destination}"


def _dispute_version(status: str | None, without_status: int) -> Version:
    """(rank,): 0 while the dispute is open, 1 once closed; an event without a status ranks
    by its type (`without_status`)."""
    if status is None:
        return (without_status,)
    return (DISPUTE_OPEN if status in DISPUTE_OPEN_STATUSES else DISPUTE_CLOSED,)


def _payout_version(payout: Mapping[str, object], rank: int) -> Version | None:
    created = opt_epoch(payout, "created")
    return (created, rank) if created is not None else None


def _created_version(obj: Mapping[str, object]) -> Version | None:
    created = opt_epoch(obj, "created")
    return (created,) if created is not None else None


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
