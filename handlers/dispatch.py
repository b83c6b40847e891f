"""The routing actor's body: claim a batch, run each event's workflows, settle the batch."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from datetime import datetime, timedelta

from handlers.context import Ran, Workflow, WorkflowContext
from handlers.routing_table import Routes, RoutesWithRules
from handlers.triggers.apply import OCCURRENCE, told
from handlers.triggers.batch import apply_triggers
from handlers.triggers.model import Trigger
from handlers.triggers.ruled import active_silences, judged
from handlers.triggers.workflow import TriggerWorkflow, load_payloads, ran_for
from hub.events.models import Status, utcnow
from hub.events.store import AttemptRecord, Claimed
from hub.runtime.backoff import backoff
from hub.runtime.logs import bind

log = logging.getLogger(__name__)


def route_events(ctx: WorkflowContext, event_ids: Sequence[str], routes: Routes) -> None:
    table = RoutesWithRules(routes, ctx.ruleset)
    # The claim marks every event of a kind without workflows `ignored` on the way (all of
    # them only with exact kinds: a rule's glob is decided here, below).
    claimed = ctx.store.claim(event_ids, table.exact_kinds())
    unrouted = [e.id for e in claimed if not table.get(e.provider, e.type)]
    if unrouted:
        ctx.store.settle(unrouted, Status.IGNORED)
        settled = set(unrouted)
        claimed = [e for e in claimed if e.id not in settled]
    batch = [e for e in claimed if _batchable(table.get(e.provider, e.type))]
    runs = _run_batch(ctx, batch, table) if batch else {}
    for event in claimed:
        if event.id not in runs:
            workflows = table.get(event.provider, event.type)
            runs[event.id] = [_run(ctx, event.id, wf) for wf in workflows]
    done: list[str] = []
    records: list[tuple[str, AttemptRecord]] = []
    for event in claimed:
        failures = [r for r in runs[event.id] if r.outcome == "error"]
        if failures:
            _fail_or_retry(ctx, event, runs[event.id], failures[0])
        else:
            done.append(event.id)
            records.extend((event.id, r) for r in runs[event.id])
    # Successes settle together: one transaction for the whole batch.
    if done:
        ctx.store.settle(done, Status.PROCESSED, records)
        ctx.metrics.settled("processed", len(done))


def _batchable(workflows: Sequence[Workflow]) -> bool:
    return bool(workflows) and all(isinstance(wf, TriggerWorkflow) for wf in workflows)


def _run_batch(
    ctx: WorkflowContext, claimed: Sequence[Claimed], table: RoutesWithRules
) -> dict[str, list[AttemptRecord]]:
    """Trigger workflows for many events: payloads read in one query, each decided on its
    own (the catalogue, then the rules), then every change applied in one transaction
    (handlers/triggers/batch.py)."""
    payloads = load_payloads(ctx, [e.id for e in claimed])
    runs: dict[str, list[AttemptRecord]] = {e.id: [] for e in claimed}
    decided: list[tuple[str, str, datetime, Trigger]] = []
    held = active_silences(ctx)
    for event in claimed:
        for workflow in table.get(event.provider, event.type):
            assert isinstance(workflow, TriggerWorkflow)
            name, started = _name(workflow), utcnow()
            payload, kind = payloads[event.id], (event.provider, event.type)
            with bind(event_id=event.id, workflow=name):
                try:
                    decision = workflow.decide(ctx, event.id, payload)
                    decision = judged(ctx, table.rules, kind, payload, decision, held=held)
                except Exception as exc:
                    runs[event.id].append(_failed(ctx, name, started, event.id, exc))
                    continue
            if isinstance(decision, Trigger):
                decided.append((event.id, name, started, decision))
            else:
                runs[event.id].append(_ran(ctx, name, started, event.id, decision))
    items = [(event_id, trigger) for event_id, _, _, trigger in decided]
    outcomes = apply_triggers(ctx, items, [name for _, name, _, _ in decided])
    debug = log.isEnabledFor(logging.DEBUG)
    # They finished together, when the batch's transaction committed: one datetime for all
    # (their rows then convert it to text once).
    end = utcnow()
    for (event_id, name, started, trigger), outcome in zip(decided, outcomes, strict=True):
        rule = trigger.route.rule if trigger.route is not None else None
        if not isinstance(outcome, Exception) and outcome.message == OCCURRENCE and not debug:
            # No line to write (an occurrence is one at DEBUG): no ids to bind for it.
            ran = _ran(ctx, name, started, event_id, None, quiet=True, rule=rule, end=end)
            runs[event_id].append(ran)
            continue
        with bind(event_id=event_id, workflow=name):
            if isinstance(outcome, Exception):
                failed = _failed(ctx, name, started, event_id, outcome, rule=rule, end=end)
                runs[event_id].append(failed)
            else:
                # An incident opened or resolved has its line already, with this workflow's
                # name on it: not a second one saying the same (each INFO line is ~40 us).
                quiet = outcome.message == OCCURRENCE or told(outcome)
                ran = _ran(
                    ctx, name, started, event_id, ran_for(outcome), quiet=quiet, rule=rule, end=end
                )
                runs[event_id].append(ran)
    return runs


def _name(workflow: Workflow) -> str:
    return f"{workflow.__module__}.{workflow.__qualname__}"


def _run(ctx: WorkflowContext, event_id: str, workflow: Workflow) -> AttemptRecord:
    started = utcnow()
    name = _name(workflow)
    with bind(event_id=event_id, workflow=name):
        try:
            ran = workflow(ctx, event_id)
        except Exception as exc:
            return _failed(ctx, name, started, event_id, exc)
        return _ran(ctx, name, started, event_id, ran)


def _failed(
    ctx: WorkflowContext,
    name: str,
    started: datetime,
    event_id: str,
    exc: Exception,
    *,
    rule: str | None = None,
    end: datetime | None = None,
) -> AttemptRecord:
    log.warning("workflow %s failed for %s: %s", name, event_id, exc)
    ctx.metrics.attempt(name, ok=False)
    error = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc))
    return AttemptRecord(name, started, end or utcnow(), "error", error, trace, rule=rule)


def _ran(
    ctx: WorkflowContext,
    name: str,
    started: datetime,
    event_id: str,
    ran: Ran | None,
    *,
    quiet: bool = False,
    rule: str | None = None,
    end: datetime | None = None,
) -> AttemptRecord:
    """`quiet`: a line at DEBUG, not INFO (an occurrence: a burst is thousands of them, and
    the batch says how many in one line). `end`: when it finished, if not now."""
    if ran is not None:
        log.info("workflow %s: %s for %s: %s", name, ran.outcome, event_id, ran.detail)
    else:
        log.log(logging.DEBUG if quiet else logging.INFO, "workflow %s ran for %s", name, event_id)
    ctx.metrics.attempt(name, ok=True)
    if ran is not None:
        rule = ran.rule or rule
        finished = end or utcnow()
        return AttemptRecord(name, started, finished, ran.outcome, detail=ran.detail, rule=rule)
    return AttemptRecord(name, started, end or utcnow(), "ok", rule=rule)


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
