"""The routing actor's body: claim a batch, run each event's workflows, settle the batch."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from datetime import timedelta

from handlers.context import Workflow, WorkflowContext
from handlers.routing_table import Routes
from hub.events.models import Status, utcnow
from hub.events.store import AttemptRecord, Claimed
from hub.runtime.backoff import backoff
from hub.runtime.logs import bind

log = logging.getLogger(__name__)


def route_events(ctx: WorkflowContext, event_ids: Sequence[str], routes: Routes) -> None:
    # The claim marks every event of a kind without workflows `ignored` on the way.
    claimed = ctx.store.claim(event_ids, [f"{p}:{t}" for p, t in routes])
    done: list[str] = []
    records: list[tuple[str, AttemptRecord]] = []
    for event in claimed:
        runs = [_run(ctx, event.id, wf) for wf in routes.get((event.provider, event.type), ())]
        failures = [r for r in runs if r.outcome == "error"]
        if failures:
            _fail_or_retry(ctx, event, runs, failures[0])
        else:
            done.append(event.id)
            records.extend((event.id, r) for r in runs)
    # Successes settle together: one transaction for the whole batch.
    if done:
        ctx.store.settle(done, Status.PROCESSED, records)
        ctx.metrics.settled("processed", len(done))


def _run(ctx: WorkflowContext, event_id: str, workflow: Workflow) -> AttemptRecord:
    started = utcnow()
    name = f"{workflow.__module__}.{workflow.__qualname__}"
    with bind(event_id=event_id, workflow=name):
        try:
            ran = workflow(ctx, event_id)
        except Exception as exc:
            log.warning("workflow %s failed for %s: %s", name, event_id, exc)
            ctx.metrics.attempt(name, ok=False)
            error = f"{type(exc).__name__}: {exc}"
            return AttemptRecord(name, started, utcnow(), "error", error, traceback.format_exc())
        if ran is not None:
            log.info("workflow %s: %s for %s: %s", name, ran.outcome, event_id, ran.detail)
        else:
            log.info("workflow %s ran for %s", name, event_id)
    ctx.metrics.attempt(name, ok=True)
    if ran is not None:
        return AttemptRecord(name, started, utcnow(), ran.outcome, detail=ran.detail)
    return AttemptRecord(name, started, utcnow(), "ok")


def _fail_or_retry(
    ctx: WorkflowContext, event: Claimed, runs: list[AttemptRecord], failure: AttemptRecord
) -> None:
    records = [(event.id, r) for r in runs]
    settings = ctx.settings
    if event.runs > settings.worker_max_retries:
        ctx.store.settle([event.id], Status.FAILED, records, error=failure.error)
        ctx.metrics.settled("failed")
        log.error(
            "event %s failed after %d runs: %s",
            event.id,
            event.runs,
            failure.error,
            extra={"event_id": event.id},
        )
        return
    delay_ms = round(
        backoff(event.runs, settings.worker_min_backoff_ms, settings.worker_max_backoff_ms)
    )
    retry_at = utcnow() + timedelta(milliseconds=delay_ms)
    ctx.store.settle([event.id], Status.QUEUED, records, error=failure.error, retry_at=retry_at)
    ctx.metrics.settled("retry")
    # If this send is lost, the deadline set above lets the sweeper find the event.
    ctx.queue.send([event.id], delay_ms=delay_ms)
