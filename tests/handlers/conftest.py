"""A workflow context on a real (SQLite) store, with an in-memory broker."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from handlers.context import WorkflowContext
from hub.config import Settings
from hub.events.store import EventStore, NewEvent
from hub.incidents.changes import effects, incidents, timeline
from hub.runtime.db import make_engine
from hub.runtime.queue import DELIVER_ACTOR, EventQueue
from tests.conftest import make_settings


@pytest.fixture
def ctx(settings: Settings) -> WorkflowContext:
    return context_for(settings)


@pytest.fixture(params=["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.services)])
def any_ctx(request: pytest.FixtureRequest) -> WorkflowContext:
    """The same context on SQLite, then on a fresh PostgreSQL database."""
    return context_for(make_settings(request.getfixturevalue(request.param)))


def context_for(settings: Settings) -> WorkflowContext:
    engine = make_engine(settings.database_url)
    broker = StubBroker()
    broker.declare_queue(settings.queue_name)
    return WorkflowContext(
        settings=settings,
        engine=engine,
        store=EventStore(engine),
        queue=EventQueue(broker, settings.queue_name),
    )


def store_event(
    ctx: WorkflowContext,
    provider: str,
    event_type: str,
    payload: dict[str, Any],
    content_type: str = "application/json",
    body: bytes | None = None,
) -> str:
    raw = body if body is not None else json.dumps(payload).encode()
    event = NewEvent(provider, uuid.uuid4().hex, event_type, {"content-type": content_type}, raw)
    (stored,) = ctx.store.insert([event])
    return stored.event_id


def rows(ctx: WorkflowContext, table: Any, *where: Any) -> list[Any]:
    with ctx.engine.connect() as conn:
        first_column = next(iter(table.c))
        return list(conn.execute(select(table).where(*where).order_by(first_column)))


def all_incidents(ctx: WorkflowContext) -> list[Any]:
    return rows(ctx, incidents)


def effects_of(ctx: WorkflowContext, incident_id: str | None = None) -> list[Any]:
    if incident_id is None:
        return rows(ctx, effects)
    return rows(ctx, effects, effects.c.incident_id == incident_id)


def timeline_of(ctx: WorkflowContext, incident_id: str) -> list[Any]:
    return rows(ctx, timeline, timeline.c.incident_id == incident_id)


def deliver_messages(ctx: WorkflowContext) -> list[Any]:
    """The args of the delivery messages waiting in the stub broker, taken off it."""
    queue = ctx.queue.broker.queues[ctx.queue.queue_name]  # type: ignore[attr-defined]
    found = []
    while not queue.empty():
        message = json.loads(queue.get_nowait())
        if message["actor_name"] == DELIVER_ACTOR:
            found.append(message["args"][0])
    return found
