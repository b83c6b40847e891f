"""The router applies a claimed batch's incident changes in one transaction (issue #15): a
burst of occurrences is one update, yet each event keeps its own attempt and outcome, the
order of opens and resolves per key is what one-by-one application gives, and a failing
event fails alone. Run on SQLite and PostgreSQL (`any_ctx`)."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from handlers.context import WorkflowContext
from handlers.dispatch import route_events
from handlers.routing_table import ROUTES
from handlers.triggers import batch, opens
from handlers.triggers.model import Change, Trigger
from handlers.triggers.workflow import incident_workflow
from hub.events.store import attempts, events
from hub.incidents.models import IncidentEvent, IncidentKey
from tests.conftest import make_settings
from tests.handlers import payloads as p
from tests.handlers.conftest import (
    all_incidents,
    context_for,
    effects_of,
    rows,
    store_event,
    timeline_of,
)

incident_events = IncidentEvent.__table__  # type: ignore[attr-defined]
incident_keys = IncidentKey.__table__  # type: ignore[attr-defined]


def failed_payment(ctx: WorkflowContext, n: int, account: str = "acct_1") -> str:
    intent = p.payment_intent_failed(intent_id=f"pi_{account}_{n}")
    body = p.stripe_event("payment_intent.payment_failed", intent, account=account,
                          event_id=f"evt_{account}_{n}")  # fmt: skip
    return store_event(ctx, "stripe", body["type"], body)


def ci(ctx: WorkflowContext, conclusion: str, run: int, repo: str = "octo/app") -> str:
    body = p.workflow_run(conclusion, "main", run_number=run, run_id=run, repo=repo)
    return store_event(ctx, "github", "workflow_run.completed", body)


def dispute(ctx: WorkflowContext, status: str, dispute_id: str = "dp_1") -> str:
    kind = "charge.dispute.created" if status == "needs_response" else "charge.dispute.closed"
    body = p.stripe_event(kind, p.dispute(dispute_id=dispute_id, status=status),
                          event_id=f"evt_{dispute_id}_{status}")  # fmt: skip
    return store_event(ctx, "stripe", kind, body)


def statuses(ctx: WorkflowContext) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in rows(ctx, events):
        found[row.status] = found.get(row.status, 0) + 1
    return found


def commits_during(ctx: WorkflowContext, run: Any) -> int:
    seen: list[int] = []
    listener = lambda _conn: seen.append(1)  # noqa: E731
    sa_event.listen(ctx.engine, "commit", listener)
    try:
        run()
    finally:
        sa_event.remove(ctx.engine, "commit", listener)
    return len(seen)


def test_a_burst_of_occurrences_is_one_update_and_each_event_keeps_its_attempt(any_ctx):
    ctx = any_ctx
    route_events(ctx, [failed_payment(ctx, 0)], ROUTES)  # opens the incident
    burst = [failed_payment(ctx, n) for n in range(1, 61)]

    commits = commits_during(ctx, lambda: route_events(ctx, burst, ROUTES))

    (incident,) = all_incidents(ctx)
    assert incident.occurrences == 61
    # claim, one apply, settle: not one transaction per event
    assert commits <= 4, commits
    linked = rows(ctx, incident_events, incident_events.c.incident_id == incident.id)
    assert len(linked) == 61
    assert statuses(ctx) == {"processed": 61}
    for event_id in burst:
        (attempt,) = rows(ctx, attempts, attempts.c.event_id == event_id)
        assert (attempt.workflow, attempt.outcome) == (
            "handlers.billing.count_failed_payment",
            "ok",
        )
    # One post and one coalesced update owed, however many occurrences came at once.
    assert sorted(e.kind for e in effects_of(ctx, incident.id)) == ["slack.post", "slack.update"]
    # Routed again (a redelivered message): nothing is counted twice.
    route_events(ctx, burst, ROUTES)
    assert all_incidents(ctx)[0].occurrences == 61


def history(ctx: WorkflowContext, seed: int) -> list[str]:
    """Events stored in an order a provider might deliver them: keys interleaved, a CI run's
    success before an older failure, a dispute closed and reopened, a resolve first. The
    router takes a batch in the order its events arrived (their ids)."""
    make: list[Any] = [lambda: dispute(ctx, "won", "dp_0")]  # a resolve with nothing open
    make += [lambda n=n: failed_payment(ctx, n, account=f"acct_{n % 2}") for n in range(12)]
    make += [lambda r=r: ci(ctx, "failure", r) for r in (42, 43, 44, 46)]
    make += [lambda: ci(ctx, "success", 45), lambda: ci(ctx, "failure", 47, "octo/b")]
    make += [lambda: dispute(ctx, "needs_response", "dp_0")]
    make += [lambda d=d: dispute(ctx, "needs_response", d) for d in ("dp_1", "dp_2")]
    make += [lambda: dispute(ctx, "lost", "dp_1"), lambda: dispute(ctx, "won", "dp_2")]
    # Keys changed once, that nothing knows yet: opened together (handlers/triggers/opens.py).
    make += [lambda r=r: ci(ctx, "failure", 50 + r, f"octo/new{r}") for r in range(3)]
    make += [lambda d=d: dispute(ctx, "needs_response", f"dp_new{d}") for d in range(3)]
    random.Random(seed).shuffle(make)
    return [store() for store in make]


def outcome(ctx: WorkflowContext, ids: list[str]) -> list[tuple[Any, ...]]:
    """Everything but ids and times: each incident as responders see it, what it owes, its
    timeline, its events, and its key's watermark. Events are named by their place in the
    history (`ids`), the same in both databases."""
    place = {event_id: f"#{n}" for n, event_id in enumerate(ids)}

    def named(text: Any) -> Any:
        for event_id, name in place.items():
            text = text.replace(event_id, name) if isinstance(text, str) else text
        return text

    found = []
    marks = {row.key: row for row in rows(ctx, incident_keys)}
    for row in all_incidents(ctx):
        linked = rows(ctx, incident_events, incident_events.c.incident_id == row.id)
        # A coalesced message update names one of the events it shows, whichever re-armed it.
        owed = sorted((e.kind, e.status, None if e.kind == "slack.update" else
                       named(e.cause_event_id)) for e in effects_of(ctx, row.id))  # fmt: skip
        lines = [(t.actor, t.action, named(t.detail)) for t in timeline_of(ctx, row.id)]
        seen = (row.title, row.severity, row.summary, row.links, row.channels, row.source)
        mark = marks.get(row.key)
        watermark = mark and (mark.version, mark.change, named(mark.event_id), named(mark.note),
                              mark.incident_id == row.id)  # fmt: skip
        linked_events = sorted(named(e.event_id) for e in linked)
        state = (row.key, row.status, row.occurrences)
        found.append((*state, seen, linked_events, owed, lines, watermark))
    return sorted(found, key=repr)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_one_batch_ends_where_one_event_at_a_time_ends(any_ctx, sqlite_template, tmp_path, seed):
    batched = any_ctx
    ids = history(batched, seed)
    route_events(batched, ids, ROUTES)

    alone = context_for(make_settings(f"sqlite:///{tmp_path}/alone.db"))
    tmp_path.joinpath("alone.db").write_bytes(sqlite_template.read_bytes())
    alone_ids = history(alone, seed)
    for event_id in alone_ids:
        route_events(alone, [event_id], ROUTES)

    assert outcome(batched, ids) == outcome(alone, alone_ids)
    assert statuses(batched) == statuses(alone) == {"processed": len(ids)}


def test_an_event_that_cannot_be_decided_fails_alone(any_ctx):
    ctx = any_ctx
    good = [failed_payment(ctx, n) for n in range(10)]
    bad = store_event(ctx, "stripe", "payment_intent.payment_failed",
                      {"id": "evt_bad", "type": "payment_intent.payment_failed"})  # fmt: skip
    route_events(ctx, [*good[:5], bad, *good[5:]], ROUTES)

    assert all_incidents(ctx)[0].occurrences == 10
    with ctx.engine.connect() as conn:
        row = conn.execute(select(events).where(events.c.id == bad)).one()
    assert row.status == "queued" and row.runs == 1  # retried later, with backoff
    (attempt,) = rows(ctx, attempts, attempts.c.event_id == bad)
    assert attempt.outcome == "error"
    assert statuses(ctx) == {"processed": 10, "queued": 1}


@pytest.mark.services
def test_an_event_the_database_refuses_fails_alone_and_the_batch_still_applies(postgres_url):
    ctx = context_for(make_settings(postgres_url))
    good = [failed_payment(ctx, n) for n in range(5)] + [ci(ctx, "failure", 50)]
    # A key longer than its column: PostgreSQL refuses the row, and the whole transaction.
    too_long = ci(ctx, "failure", 51, repo="octo/" + "x" * 320)
    route_events(ctx, [*good[:3], too_long, *good[3:]], ROUTES)

    assert statuses(ctx) == {"processed": 6, "queued": 1}
    (attempt,) = rows(ctx, attempts, attempts.c.event_id == too_long)
    assert attempt.outcome == "error" and "too long" in attempt.error
    keys = sorted(i.key.split(":")[1] for i in all_incidents(ctx))
    assert keys == ["ci", "failed-payments"]


def grouped(payload: Any) -> Trigger:
    """A rule-like trigger with no version: occurrences of `key` until one says resolve."""
    change = Change.RESOLVE if payload["resolve"] else Change.OPEN
    return Trigger(change, key=payload["key"], actor="test", title=payload["key"],
                   summary=payload["summary"])  # fmt: skip


GROUPED = {("github", "grouped"): (incident_workflow(grouped),)}


def store_grouped(ctx: WorkflowContext, summary: str, *, resolve: bool = False) -> str:
    body = {"key": "a", "resolve": resolve, "summary": summary}
    return store_event(ctx, "github", "grouped", body)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_occurrences_around_a_resolve_of_the_same_key_end_as_one_by_one(
    any_ctx, sqlite_template, tmp_path, seed
):
    """Open, occurrences, resolve, occurrences again (a new incident), on keys interleaved:
    the occurrences before a resolve are written before it, those after open anew."""
    rng = random.Random(seed)
    plan = [(rng.choice("ab"), rng.random() < 0.2, f"s{n}") for n in range(80)]

    def store_all(ctx: WorkflowContext) -> list[str]:
        payloads = [{"key": k, "resolve": r, "summary": s} for k, r, s in plan]
        return [store_event(ctx, "github", "grouped", body) for body in payloads]

    def opened(ctx: WorkflowContext) -> list[str]:
        # Both keys live before the batch, as in a burst on incidents already open.
        first = []
        for key in "ab":
            body = {"key": key, "resolve": False, "summary": "first"}
            first.append(store_event(ctx, "github", "grouped", body))
            route_events(ctx, first[-1:], GROUPED)
        return first

    batched = any_ctx
    batched_ids = opened(batched)
    batched_ids += (burst := store_all(batched))
    route_events(batched, burst, GROUPED)
    alone = context_for(make_settings(f"sqlite:///{tmp_path}/alone.db"))
    tmp_path.joinpath("alone.db").write_bytes(sqlite_template.read_bytes())
    alone_ids = opened(alone)
    for event_id in store_all(alone):
        alone_ids.append(event_id)
        route_events(alone, [event_id], GROUPED)

    assert outcome(batched, batched_ids) == outcome(alone, alone_ids)
    assert len(outcome(batched, batched_ids)) > 2  # resolves happened between occurrences


@pytest.mark.services
def test_a_resolve_another_worker_commits_mid_batch_sends_the_occurrences_to_a_new_incident(
    postgres_url, monkeypatch
):
    """The batch reads the live incident without locking it (no worker waits on another's
    whole batch); the resolve that commits in between wins, and the batch's occurrences,
    applied again, open a new incident instead of counting on the resolved one."""
    ctx = context_for(make_settings(postgres_url))
    route_events(ctx, [store_grouped(ctx, "first")], GROUPED)
    (first,) = all_incidents(ctx)
    later = [store_grouped(ctx, f"again {n}") for n in range(3)]
    resolve = store_grouped(ctx, "fixed", resolve=True)
    finish, resolved_meanwhile, waited = batch._Batch.finish, threading.Event(), []

    def resolve_first(self: Any) -> None:
        if not resolved_meanwhile.is_set():  # once: not in the resolve's own batch, nor later
            resolved_meanwhile.set()
            worker = threading.Thread(target=route_events, args=(ctx, [resolve], GROUPED))
            worker.start()
            worker.join(timeout=10)  # blocked here if the batch held the incident's row
            waited.append(worker.is_alive())  # (an assert here would be the batch's error)
        finish(self)

    monkeypatch.setattr(batch._Batch, "finish", resolve_first)
    route_events(ctx, later, GROUPED)

    assert waited == [False], "the other worker waited for this batch's lock"
    old, new = all_incidents(ctx)
    assert (old.id, old.status, old.occurrences) == (first.id, "resolved", 1)
    assert (new.status, new.occurrences, new.summary) == ("open", 3, "again 2")
    linked = rows(ctx, incident_events, incident_events.c.incident_id == new.id)
    assert sorted(link.event_id for link in linked) == sorted(later)
    assert statuses(ctx) == {"processed": 5}


@pytest.mark.services
def test_a_batch_that_loses_the_race_to_open_its_key_retries_as_a_batch(postgres_url, monkeypatch):
    """Every worker's first batch of a burst on a new key tries to open it at once; the
    losers retry as a batch and add their occurrences to the winner's incident, in a few
    commits rather than one per event."""
    ctx = context_for(make_settings(postgres_url))
    burst = [store_grouped(ctx, f"burst {n}") for n in range(20)]
    rival = store_grouped(ctx, "rival")
    opened_meanwhile = threading.Event()

    def lose_the_race(self: Any, *args: Any) -> str:
        # Both opened at once: the rival committed first, and the unique index on a key's
        # live incident refuses this batch's row (what PostgreSQL does to the loser).
        opened_meanwhile.set()
        worker = threading.Thread(target=route_events, args=(ctx, [rival], GROUPED))
        worker.start()
        worker.join(timeout=10)
        raise IntegrityError("INSERT INTO incidents", {}, Exception("duplicate live key"))

    monkeypatch.setattr(batch._Batch, "_open", lose_the_race)
    commits = commits_during(ctx, lambda: route_events(ctx, burst, GROUPED))

    assert opened_meanwhile.is_set()
    (incident,) = all_incidents(ctx)
    assert (incident.occurrences, incident.summary) == (21, "burst 19")
    assert statuses(ctx) == {"processed": 21}
    assert commits < 10, f"{commits} commits: the burst was applied one event at a time"


def test_new_keys_another_worker_opens_first_are_added_to_its_incidents(
    postgres_url, monkeypatch, caplog
):
    """A batch reads that nothing knows its keys, and opens them together at its end; a rival
    worker that commits an opening of one of them meanwhile wins, and this batch runs again:
    its failure is then the next run of that repository's broken CI, an occurrence."""
    ctx = context_for(make_settings(postgres_url))
    mine = [ci(ctx, "failure", 61, "octo/raced"), ci(ctx, "failure", 70, "octo/calm")]
    mine.append(dispute(ctx, "needs_response", "dp_calm"))
    rival = ci(ctx, "failure", 60, "octo/raced")
    write = opens.Openings.write
    rivals: list[bool] = []
    raced = threading.Event()

    def rival_first(self: Any, conn: Any) -> None:
        if not raced.is_set():  # once, and not in the rival's own batch
            raced.set()
            worker = threading.Thread(target=route_events, args=(ctx, [rival], ROUTES))
            worker.start()
            worker.join(timeout=10)
            rivals.append(worker.is_alive())
        write(self, conn)

    monkeypatch.setattr(opens.Openings, "write", rival_first)
    with caplog.at_level(logging.INFO, logger="handlers.triggers.batch"):
        route_events(ctx, mine, ROUTES)

    assert rivals == [False], "the rival waited for this batch"
    # Ran again as a batch, not event by event (each its own transaction).
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("a batch")]
    assert said == ["a batch of 3 changes again: IntegrityError"]
    found = {row.key: row for row in all_incidents(ctx)}
    assert len(found) == 3
    won = next(row for row in found.values() if "raced" in row.key)
    assert (won.status, won.occurrences) == ("open", 2)
    linked = rows(ctx, incident_events, incident_events.c.incident_id == won.id)
    assert sorted(link.event_id for link in linked) == sorted([rival, mine[0]])
    assert all(row.occurrences == 1 for row in found.values() if row.id != won.id)
    assert len(rows(ctx, incident_keys)) == 3
    assert statuses(ctx) == {"processed": 4}
