"""The routing actor's rules: attempts recorded, retries with backoff, `failed` at the end,
and redelivered messages changing nothing. Runs the real store on SQLite."""

from __future__ import annotations

from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from handlers.context import Workflow, WorkflowContext
from handlers.dispatch import route_events
from hub.config import Settings
from hub.events.store import EventStore, NewEvent, attempts, events
from hub.runtime.backoff import backoff
from hub.runtime.db import make_engine
from hub.runtime.queue import EventQueue


@pytest.fixture
def ctx(settings: Settings) -> WorkflowContext:
    engine = make_engine(settings.database_url)
    broker = StubBroker()
    broker.declare_queue(settings.queue_name)
    return WorkflowContext(
        settings=settings,
        engine=engine,
        store=EventStore(engine),
        queue=EventQueue(broker, settings.queue_name),
    )


def store(ctx: WorkflowContext, *types: str) -> list[str]:
    batch = [NewEvent("github", f"d-{i}-{t}", t, {}, b"{}") for i, t in enumerate(types)]
    return [s.event_id for s in ctx.store.insert(batch)]


def status_of(ctx: WorkflowContext, event_id: str) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(select(events).where(events.c.id == event_id)).one()


def attempts_of(ctx: WorkflowContext, event_id: str) -> list[Any]:
    with ctx.engine.connect() as conn:
        stmt = select(attempts).where(attempts.c.event_id == event_id).order_by(attempts.c.id)
        return list(conn.execute(stmt))


def table(routes: dict[str, tuple[Workflow, ...]]) -> dict[tuple[str, str], tuple[Workflow, ...]]:
    return {("github", event_type): flows for event_type, flows in routes.items()}


def test_each_workflow_gets_an_attempt_and_unrouted_events_are_ignored(ctx):
    seen: list[str] = []

    def first(_ctx: WorkflowContext, event_id: str) -> None:
        seen.append(event_id)

    def second(_ctx: WorkflowContext, event_id: str) -> None:
        seen.append(event_id)

    routed, unrouted = store(ctx, "ping", "push")
    route_events(ctx, [routed, unrouted], table({"ping": (first, second)}))
    assert seen == [routed, routed]
    assert status_of(ctx, routed).status == "processed"
    assert status_of(ctx, routed).deadline is None
    assert [a.outcome for a in attempts_of(ctx, routed)] == ["ok", "ok"]
    assert attempts_of(ctx, routed)[0].workflow.endswith("first")
    assert status_of(ctx, unrouted).status == "ignored"
    assert attempts_of(ctx, unrouted) == []


def test_a_redelivered_message_changes_nothing(ctx):
    calls: list[str] = []
    (event_id,) = store(ctx, "ping")
    routes = table({"ping": (lambda _c, e: calls.append(e),)})
    route_events(ctx, [event_id], routes)
    route_events(ctx, [event_id], routes)
    assert calls == [event_id]
    assert len(attempts_of(ctx, event_id)) == 1
    assert status_of(ctx, event_id).runs == 1


def test_failures_retry_with_backoff_then_fail_with_the_error(ctx):
    def broken(_ctx: WorkflowContext, _event_id: str) -> None:
        raise RuntimeError("slack said no")

    (event_id,) = store(ctx, "ping")
    routes = table({"ping": (broken,)})
    broker: StubBroker = ctx.queue.broker  # type: ignore[assignment]
    delayed = f"{ctx.settings.queue_name}.DQ"
    for run in range(1, ctx.settings.worker_max_retries + 1):
        route_events(ctx, [event_id], routes)
        row = status_of(ctx, event_id)
        assert (row.status, row.runs) == ("queued", run)
        assert row.last_error == "RuntimeError: slack said no"
        assert broker.queues[delayed].qsize() == run  # one delayed retry message per failure
    route_events(ctx, [event_id], routes)
    row = status_of(ctx, event_id)
    assert row.status == "failed"
    assert row.deadline is None
    tries = attempts_of(ctx, event_id)
    assert len(tries) == ctx.settings.worker_max_retries + 1
    assert all(a.outcome == "error" for a in tries)
    assert "RuntimeError: slack said no" in tries[-1].traceback
    assert broker.queues[delayed].qsize() == ctx.settings.worker_max_retries


def test_backoff_grows_and_is_capped():
    assert 800 <= backoff(1, 1000, 60_000) <= 1200
    assert 3200 <= backoff(3, 1000, 60_000) <= 4800
    assert backoff(30, 1000, 60_000) <= 72_000


def test_a_live_lease_keeps_other_workers_off_and_an_expired_one_does_not(ctx):
    (event_id,) = store(ctx, "ping")
    assert [c.id for c in ctx.store.claim([event_id])] == [event_id]
    assert ctx.store.claim([event_id]) == []  # another worker, while the lease lives
    with ctx.engine.begin() as conn:  # the first worker died; its lease runs out
        conn.execute(events.update().values(deadline=events.c.received_at))
    assert ctx.store.sweep() == [event_id]
    assert status_of(ctx, event_id).status == "received"
    assert [c.runs for c in ctx.store.claim([event_id])] == [2]
