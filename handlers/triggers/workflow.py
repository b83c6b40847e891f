"""Turns a trigger function (payload in, decision out) into a workflow (event id in)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import bindparam, select

from handlers.context import Ran, Workflow, WorkflowContext
from handlers.triggers.apply import apply_trigger
from handlers.triggers.model import Trigger
from hub.events.store import events
from integrations.payloads import decode

Decide = Callable[[Mapping[str, object]], Trigger | None]


def load_payload(ctx: WorkflowContext, event_id: str) -> dict[str, object]:
    """The stored event's payload, decoded as its provider sent it."""
    with ctx.engine.connect() as conn:
        headers, body = conn.execute(_payload_sql(), {"p_id": event_id}).one()
    return decode(headers or {}, bytes(body))


@functools.cache
def _payload_sql() -> Any:
    return select(events.c.headers, events.c.body).where(events.c.id == bindparam("p_id"))


def incident_workflow(decide: Decide) -> Workflow:
    """The workflow keeps the trigger's name: attempts show `handlers.billing.open_...`."""

    @functools.wraps(decide)
    def workflow(ctx: WorkflowContext, event_id: str) -> Ran | None:
        return run_trigger(ctx, event_id, decide(load_payload(ctx, event_id)))

    return workflow


def run_trigger(ctx: WorkflowContext, event_id: str, trigger: Trigger | None) -> Ran | None:
    if trigger is None:
        return None
    outcome = apply_trigger(ctx, event_id, trigger)
    # The attempt says why the event changed nothing: the admin API and CLI show it.
    return Ran("stale", outcome.message.removeprefix("stale: ")) if outcome.stale else None
