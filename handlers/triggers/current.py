"""Stripe workflows that decide from what Stripe reports now, not from what the event said.

Stripe does not deliver events in order, and the same change can come twice; Stripe's advice
(and dj-stripe's practice) is to fetch the object and act on its current state. With
HUB_STRIPE_API_KEY set, a dispute or payout event fetches its object, and the decider sees that
object in `data.object`: a late `charge.dispute.created` for a dispute Stripe reports as won
resolves (the watermark then keeps it from opening anything). The version comes from the
fetched object too, so it compares with the key's watermark like any other.

Degrading. A snapshot event carries its object: when Stripe cannot answer (an outage, a 429,
a revoked key, the shared budget spent), one warning is logged and the event decides from its
own object by its type, the event-order rule of handlers/triggers/order.py. It is never failed
for that. A thin event (`v2.core.event`) carries only a reference: without a key it is marked
`unfetched` and says why; a Stripe error that may pass raises, so the event is retried with
the workers' backoff (and can be replayed once failed); a permanent one marks it `unfetched`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from handlers.context import Ran, WorkflowContext
from handlers.triggers.payload import opt_str
from handlers.triggers.workflow import Decide, Decision, TriggerWorkflow
from integrations.outbound import OutboundError, Permanent, RateLimited

log = logging.getLogger(__name__)

THIN = "v2.core.event"
BUDGET = "stripe:reads"
# The longest a worker waits for the shared budget. At 25 reads a second a slot frees every
# 40 ms; a longer wait means a 429 has blocked the budget or a burst is beyond it, and then
# the event decides without Stripe rather than hold a worker thread.
MAX_WAIT_S = 1.0
UNFETCHED = "unfetched"


def confirmed(on_event: Decide, on_state: Decide, object_type: str) -> TriggerWorkflow:
    """A snapshot event's workflow: `on_state` decides from the object Stripe reports now;
    `on_event` (today's rule, by event type) without a key or when Stripe cannot answer.
    The workflow keeps `on_event`'s name, as attempts have always shown it."""

    def decide(ctx: WorkflowContext, event_id: str, event: dict[str, object]) -> Decision:
        if ctx.stripe is None:
            return on_event(event)
        now = _current(ctx, event_id, event, object_type)
        if now is None:
            return on_event(event)
        return on_state(_with_object(event, now))

    return TriggerWorkflow(decide, on_event, on_event)


def fetched(decide: Decide) -> TriggerWorkflow:
    """A thin event's workflow: its related object fetched, then `decide`d from as if it had
    come in a snapshot event of the same type (`v1.payout.failed` -> `payout.failed`)."""

    def decide_fetched(ctx: WorkflowContext, event_id: str, thin: dict[str, object]) -> Decision:
        name = f"{opt_str(thin, 'type')} {opt_str(thin, 'id')}"
        stripe = ctx.stripe
        if stripe is None:
            log.warning("stripe thin event %s (%s): not fetched, HUB_STRIPE_API_KEY is not set",
                        event_id, name)  # fmt: skip
            return Ran(UNFETCHED, "a thin event: set HUB_STRIPE_API_KEY, then replay it")
        try:
            obj = _read(ctx, "related_object", lambda: stripe.related(thin))
        except Permanent as exc:
            log.warning("stripe thin event %s (%s): not fetched: %s", event_id, name, exc.reason)
            return Ran(UNFETCHED, exc.reason)
        return decide(snapshot_of(thin, obj))

    return TriggerWorkflow(decide_fetched, decide, None)


def snapshot_of(thin: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot event a thin event stands for, with the object as Stripe has it now."""
    event: dict[str, Any] = {
        "id": thin.get("id"),
        "object": "event",
        "type": str(thin.get("type") or "").removeprefix("v1."),
        "data": {"object": dict(obj)},
    }
    if isinstance(thin.get("livemode"), bool):
        event["livemode"] = thin["livemode"]
    context = thin.get("context")
    if isinstance(context, str) and context:
        # A connected account's events carry its id as their context (`acct_...`); the last
        # segment of a nested context is the account the object belongs to.
        event["account"] = context.rsplit("/", 1)[-1]
    return event


def _current(
    ctx: WorkflowContext, event_id: str, event: Mapping[str, Any], object_type: str
) -> dict[str, Any] | None:
    """The event's object as Stripe reports it now, or None (after one warning) when Stripe
    cannot say."""
    stripe = ctx.stripe
    object_id = opt_str(event, "data.object.id")
    if stripe is None or object_id is None:
        return None
    account = opt_str(event, "account")
    try:
        return _read(
            ctx, f"{object_type}.retrieve",
            lambda: stripe.retrieve(object_type, object_id, account=account),
        )  # fmt: skip
    except OutboundError as exc:
        log.warning(
            "stripe event %s (%s %s): could not confirm %s %s with Stripe (%s); "
            "deciding from the event's own object",
            event_id, opt_str(event, "type"), opt_str(event, "id"), object_type, object_id,
            exc.reason,
        )  # fmt: skip
        return None


def _read(ctx: WorkflowContext, method: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One Stripe read under the shared budget. A 429 blocks the budget for every worker
    until its Retry-After has passed, as the Slack and GitHub budgets are blocked."""
    _take_slot(ctx)
    ctx.metrics.call("stripe", method)
    try:
        return call()
    except RateLimited as exc:
        ctx.metrics.rate_limited("stripe", method)
        ctx.limits.block(BUDGET, exc.retry_after)
        raise


def _take_slot(ctx: WorkflowContext) -> None:
    spacing = 1.0 / max(ctx.settings.stripe_reads_per_second, 0.001)
    deadline = time.monotonic() + MAX_WAIT_S
    while (wait := ctx.limits.reserve(BUDGET, spacing)) > 0:
        if time.monotonic() + wait > deadline:
            raise RateLimited("Stripe: the shared read budget is spent", wait)
        time.sleep(wait)


def _with_object(event: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    return {**event, "data": {**(data if isinstance(data, Mapping) else {}), "object": dict(obj)}}
