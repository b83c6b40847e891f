"""Incidents follow what is true now, whatever order the events arrive in: a change at or
below the version its key already reflects is stale and changes nothing a responder sees.
Run on SQLite and on PostgreSQL; the concurrent case and the property test are at the end."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.context import WorkflowContext
from handlers.dispatch import route_events
from handlers.triggers.model import Change, Link, Trigger
from handlers.triggers.order import incident_keys
from handlers.triggers.workflow import incident_workflow
from hub.events.store import attempts, events
from hub.incidents.changes import incidents
from hub.incidents.models import IncidentEvent
from tests.handlers.conftest import all_incidents, effects_of, rows, store_event, timeline_of


def decide(payload: Mapping[str, object]) -> Trigger | None:
    """A stand-in catalogue entry: the test says what the event means and its version."""
    version = payload.get("version")
    return Trigger(
        change=Change(str(payload["change"])),
        key=str(payload.get("key", "test:ci:octo/app:CI")),
        actor="github:octocat",
        title=str(payload.get("title", "CI broken on main")),
        summary=str(payload.get("summary", "")),
        links=tuple(Link("Run", str(u)) for u in payload.get("links", [])),  # type: ignore[attr-defined]
        note=str(payload.get("note", "")),
        version=tuple(version) if isinstance(version, list) else None,
    )


workflow = incident_workflow(decide)


def deliver(ctx: WorkflowContext, change: str, version: list[int] | None, **more: Any) -> str:
    payload = {"change": change, "version": version, **more}
    event_id = store_event(ctx, "github", "workflow_run.completed", payload)
    workflow(ctx, event_id)
    return event_id


def live(ctx: WorkflowContext) -> list[Any]:
    return [i for i in all_incidents(ctx) if i.status != "resolved"]


@pytest.fixture
def ctx(any_ctx: WorkflowContext) -> WorkflowContext:
    return any_ctx


def test_a_late_failure_of_an_older_run_does_not_reopen(ctx):
    deliver(ctx, "open", [42, 1], note="run 42 failed")
    deliver(ctx, "resolve", [43, 1], note="run 43 passed")
    late = deliver(ctx, "open", [41, 1], note="run 41 failed")

    (incident,) = all_incidents(ctx)
    assert incident.status == "resolved" and incident.occurrences == 1
    entries = timeline_of(ctx, incident.id)
    assert [t.action for t in entries] == ["opened", "resolved", "stale"]
    assert "run 41 failed" in entries[-1].detail and "run 43 passed" in entries[-1].detail
    # Linked (the event shows what it fed) but owing nothing: no post, no update, no reply.
    assert [e.kind for e in effects_of(ctx, incident.id)] == ["slack.post", "slack.update",
                                                               "slack.reply"]  # fmt: skip
    linked = rows(ctx, IncidentEvent.__table__, IncidentEvent.__table__.c.event_id == late)
    assert [r.incident_id for r in linked] == [incident.id]


def test_a_success_delivered_before_the_older_failure_leaves_nothing_live(ctx):
    passed = deliver(ctx, "resolve", [51, 1], note="run 51 passed")
    failed = deliver(ctx, "open", [50, 1], note="run 50 failed")

    assert live(ctx) == []
    (incident,) = all_incidents(ctx)  # kept as a resolved incident, both events linked
    assert incident.status == "resolved"
    table = IncidentEvent.__table__
    linked = {r.event_id for r in rows(ctx, table, table.c.incident_id == incident.id)}
    assert linked == {passed, failed}
    assert effects_of(ctx) == []  # nothing was ever posted
    assert [t.action for t in timeline_of(ctx, incident.id)] == ["stale"]


def test_a_newer_failure_after_the_tombstone_opens_as_usual(ctx):
    deliver(ctx, "resolve", [51, 1])
    deliver(ctx, "open", [52, 1])
    (incident,) = live(ctx)
    assert [e.kind for e in effects_of(ctx, incident.id)] == ["slack.post"]


def test_the_same_change_sent_twice_as_two_events_is_one_occurrence(ctx):
    # Stripe can deliver one change as two events (two ids, one dispute status).
    deliver(ctx, "open", [0], key="stripe:dispute:dp_1")
    deliver(ctx, "open", [0], key="stripe:dispute:dp_1")
    (incident,) = all_incidents(ctx)
    assert incident.occurrences == 1
    assert [t.action for t in timeline_of(ctx, incident.id)] == ["opened", "stale"]


def test_a_rerun_attempt_of_the_same_run_is_newer(ctx):
    deliver(ctx, "open", [42, 1])
    deliver(ctx, "resolve", [42, 2])
    assert live(ctx) == []


def test_changes_without_a_version_still_apply_in_arrival_order(ctx):
    # Grouped occurrences carry no order: each counts, and the latest names the links.
    for n in range(3):
        deliver(ctx, "open", None, key="stripe:payments:acct_1", summary=f"payment {n} failed",
                links=[f"https://dashboard.stripe.com/payments/pi_{n}"])  # fmt: skip
    (incident,) = all_incidents(ctx)
    assert incident.occurrences == 3
    assert incident.summary == "payment 2 failed"
    assert incident.links == [{"label": "Run", "url": "https://dashboard.stripe.com/payments/pi_2"}]


def test_a_stale_event_says_so_in_its_attempt(ctx):
    deliver(ctx, "open", [42, 1])
    newer = deliver(ctx, "resolve", [43, 1], note="run 43 passed")
    payload = {"change": "open", "version": [41, 1], "note": "run 41 failed"}
    late = store_event(ctx, "github", "workflow_run.completed", payload)
    # The dispatcher claims, runs and settles it exactly as a worker does.
    route_events(ctx, [late], {("github", "workflow_run.completed"): (workflow,)})

    (attempt,) = rows(ctx, attempts, attempts.c.event_id == late)
    assert attempt.outcome == "stale"
    assert newer in attempt.detail and "run 43 passed" in attempt.detail
    # Stale is not a failure: the event settles, with no retry.
    assert [e.status for e in rows(ctx, events, events.c.id == late)] == ["processed"]


def test_a_replayed_event_that_never_applied_is_judged_by_the_same_rule(ctx):
    # Its workflow failed before applying (a database error, say), the key moved on, and
    # an admin replays it: it must not open a stale incident.
    never_applied = store_event(ctx, "github", "workflow_run.completed",
                                {"change": "open", "version": [41, 1]})  # fmt: skip
    deliver(ctx, "open", [42, 1])
    deliver(ctx, "resolve", [43, 1])
    workflow(ctx, never_applied)  # the replay runs the same workflow
    assert live(ctx) == []


def run_together(ctx: WorkflowContext, event_ids: list[str]) -> list[BaseException]:
    """Each event's workflow on its own thread, released at the same moment."""
    barrier = threading.Barrier(len(event_ids))
    errors: list[BaseException] = []

    def run(event_id: str) -> None:
        barrier.wait()
        try:
            workflow(ctx, event_id)
        except BaseException as exc:  # surfaced by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in event_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_two_workers_with_the_out_of_order_pair_at_once_leave_nothing_live(ctx):
    """The resolve (newer) and the open (older) of one key run concurrently; whichever
    commits first, the other decides after it (the key's row is locked, or its insert
    conflicts and is retried), so the end state is the one in true order."""
    for round_ in range(6):
        key = f"test:ci:race:{round_}"
        if round_ % 2:  # the key already has a live incident, so its row exists to lock
            deliver(ctx, "open", [59, 1], key=key)
        pair = [{"change": "open", "version": [60, 1], "key": key},
                {"change": "resolve", "version": [61, 1], "key": key}]  # fmt: skip
        ids = [store_event(ctx, "github", "workflow_run.completed", e) for e in pair]
        assert run_together(ctx, ids) == []
        found = rows(ctx, incidents, incidents.c.key == key)
        assert [i.status for i in found if i.status != "resolved"] == []


# --- any interleaving, any duplication ----------------------------------------------------

changes = st.lists(st.sampled_from(["open", "resolve"]), min_size=1, max_size=6)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[str], list[int]]:
    """One entity's true history (change i has version i+1), and the order the provider
    delivered it in: shuffled, with some events delivered again (Stripe and GitHub retry,
    admins replay)."""
    history = draw(changes)
    order = list(range(len(history)))
    order += draw(st.lists(st.sampled_from(order), max_size=4))  # redeliveries
    return history, draw(st.permutations(order))


@given(case=deliveries())
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
def test_any_delivery_order_ends_where_the_true_order_ends(ctx, case):
    history, order = case
    key = f"test:prop:{uuid.uuid4().hex}"
    events_ = [{"change": c, "version": [n + 1], "key": key} for n, c in enumerate(history)]
    ids = [store_event(ctx, "github", "workflow_run.completed", e) for e in events_]
    for n in order:
        workflow(ctx, ids[n])
    # In true order the key ends live exactly when its newest change opened it.
    found = rows(ctx, incidents, incidents.c.key == key)
    live_now = [i for i in found if i.status != "resolved"]
    assert len(live_now) == (1 if history[-1] == "open" else 0)
    (mark,) = rows(ctx, incident_keys, incident_keys.c.key == key)
    assert mark.version == [len(history)] and mark.event_id == ids[-1]
