"""Turns a trigger function (payload in, decision out) into a workflow (event id in)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from sqlalchemy import select

from handlers.context import Workflow, WorkflowContext
from handlers.incidents import apply_trigger
from handlers.trigger import Trigger
from hub.store import events
from integrations.payloads import decode

Decide = Callable[[Mapping[str, object]], Trigger | None]


def load_payload(ctx: WorkflowContext, event_id: str) -> dict[str, object]:
    """The stored event's payload, decoded as its provider sent it."""
    stmt = select(events.c.headers, events.c.body).where(events.c.id == event_id)
    with ctx.engine.connect() as conn:
        headers, body = conn.execute(stmt).one()
    return decode(headers or {}, bytes(body))


def incident_workflow(decide: Decide) -> Workflow:
    """The workflow keeps the trigger's name: attempts show `handlers.billing.open_...`."""

    @functools.wraps(decide)
    def workflow(ctx: WorkflowContext, event_id: str) -> None:
        trigger = decide(load_payload(ctx, event_id))
        if trigger is not None:
            apply_trigger(ctx, event_id, trigger)

    return workflow
