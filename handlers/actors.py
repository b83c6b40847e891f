"""Actors, declared on a given broker rather than at import, so each process (and each test)
binds them to the broker its composition root built."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dramatiq

from handlers.context import WorkflowContext
from handlers.dispatch import route_events
from handlers.outbox.deliver import deliver_effects
from handlers.routing_table import ROUTES
from handlers.upkeep.housekeeping import keep_house
from hub.runtime.queue import DELIVER_ACTOR, HOUSEKEEPING_ACTOR, ROUTE_ACTOR


def declare_actors(broker: dramatiq.Broker, ctx: WorkflowContext) -> dict[str, dramatiq.Actor]:  # type: ignore[type-arg]
    def route(event_ids: Sequence[str]) -> None:
        route_events(ctx, event_ids, ROUTES)

    def deliver(incidents: str | list[str] | None) -> None:
        # One incident's id (as messages sent before several went to a message), a list
        # of them, or None for effects of no incident.
        deliver_effects(ctx, incidents)

    def housekeeping() -> None:
        keep_house(ctx)

    bodies: dict[str, Callable[..., Any]] = {
        ROUTE_ACTOR: route,
        # Waits (rate limits, 429s) reschedule a fresh message instead of raising, so the
        # broker's retries are only for the unexpected (database down).
        DELIVER_ACTOR: deliver,
        HOUSEKEEPING_ACTOR: housekeeping,
    }
    return {
        name: dramatiq.Actor(
            body,
            broker=broker,
            actor_name=name,
            queue_name=ctx.queue.queue_name,
            priority=0,
            options={},
        )
        for name, body in bodies.items()
    }
