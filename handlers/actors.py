"""Actors, declared on a given broker rather than at import, so each process (and each test)
binds them to the broker its composition root built."""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq

from handlers.context import WorkflowContext
from handlers.router import route_events
from handlers.routing import ROUTES
from hub.queue import ROUTE_ACTOR


def declare_actors(broker: dramatiq.Broker, ctx: WorkflowContext) -> dict[str, dramatiq.Actor]:  # type: ignore[type-arg]
    def route(event_ids: Sequence[str]) -> None:
        route_events(ctx, event_ids, ROUTES)

    actor = dramatiq.Actor(
        route,
        broker=broker,
        actor_name=ROUTE_ACTOR,
        queue_name=ctx.queue.queue_name,
        priority=0,
        options={},
    )
    return {ROUTE_ACTOR: actor}
