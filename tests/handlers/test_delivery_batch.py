"""A batch that opens many incidents hands their effects to the outbox several incidents to
a message, delivered together (issue #15: four write transactions per incident, lease,
attempting, done and release, were most of a worker's writes under a burst of new
incidents). Each effect is still performed once, in order, only by the worker holding its
incident. On SQLite and PostgreSQL (`any_ctx`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from dramatiq.common import dq_name
from sqlalchemy import event as sa_event
from sqlalchemy import update

from handlers.context import WorkflowContext
from handlers.dispatch import route_events
from handlers.outbox.deliver import deliver_effects
from handlers.routing_table import ROUTES
from hub.events.models import as_utc, utcnow
from hub.incidents.changes import DELIVERY_BATCH, incidents
from hub.ingest.pg_writer import conninfo
from hub.runtime.queue import DELIVER_ACTOR
from integrations.github_api import IssueTracker
from integrations.slack_api import SlackClient
from tests.conftest import make_settings
from tests.fakes.github import GitHubServer
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.handlers.conftest import (
    all_incidents,
    context_for,
    deliver_messages,
    effects_of,
    store_event,
)
from tests.handlers.test_batch import commits_during, dispute, failed_payment


def statements_during(ctx: WorkflowContext, run: Any) -> tuple[int, int]:
    """Commits and statements sent to the database while `run` runs."""
    seen: list[str] = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    sa_event.listen(ctx.engine, "before_cursor_execute", listener)
    try:
        commits = commits_during(ctx, run)
    finally:
        sa_event.remove(ctx.engine, "before_cursor_execute", listener)
    return commits, len(seen)


def test_a_burst_of_new_incidents_is_delivered_several_to_a_message(any_ctx: WorkflowContext):
    ctx = any_ctx
    opened = DELIVERY_BATCH + 2
    route_events(ctx, [dispute(ctx, "needs_response", f"dp_{n}") for n in range(opened)], ROUTES)
    ids = sorted(i.id for i in all_incidents(ctx))
    assert len(ids) == opened

    messages = deliver_messages(ctx)
    assert messages == [ids[:DELIVERY_BATCH], ids[DELIVERY_BATCH:]]
    ran = [statements_during(ctx, lambda t=t: deliver_effects(ctx, t)) for t in messages]
    # Two commits, as many for ten incidents as for two: the lease with the claim of the
    # posts, and their record with the release (one incident to a message took four each:
    # lease, claim, record, release). And one statement each, with the reads of what is owed
    # and of what came due meanwhile: six, where each post was three (its claim, its record,
    # a second look at its lane) and each lane a read. PostgreSQL also locks the incidents
    # (lease, release) and the effects (record) in order first.
    assert [commits for commits, _ in ran] == [2, 2]
    expected = 6 if ctx.engine.dialect.name == "sqlite" else 9
    assert [statements for _, statements in ran] == [expected, expected]

    posts = [e for e in effects_of(ctx) if e.kind == "slack.post"]
    assert len(posts) == opened and {e.status for e in posts} == {"done"}
    assert all(i.lease_until is None for i in all_incidents(ctx))
    assert deliver_messages(ctx) == []  # nothing left over, nothing rescheduled


def test_an_incident_another_worker_holds_is_left_to_it(any_ctx: WorkflowContext):
    ctx = any_ctx
    route_events(ctx, [dispute(ctx, "needs_response", f"dp_{n}") for n in range(3)], ROUTES)
    first, held, last = sorted(i.id for i in all_incidents(ctx))
    until = utcnow() + timedelta(seconds=60)
    with ctx.engine.begin() as conn:
        conn.execute(update(incidents).where(incidents.c.id == held).values(lease_until=until))

    deliver_effects(ctx, [first, held, last])

    status = {e.incident_id: e.status for e in effects_of(ctx) if e.kind == "slack.post"}
    assert status == {first: "done", held: "pending", last: "done"}
    # The holder's lease is untouched: it delivers, and looks again when it lets go.
    leases = {i.id: i.lease_until for i in all_incidents(ctx)}
    assert leases[held] is not None and leases[first] is None and leases[last] is None


def test_a_message_from_before_batching_still_delivers_its_one_incident(
    any_ctx: WorkflowContext,
):
    ctx = any_ctx
    route_events(ctx, [dispute(ctx, "needs_response", "dp_old")], ROUTES)
    (incident,) = all_incidents(ctx)
    assert deliver_messages(ctx) == [incident.id]  # one incident: its id, as before
    deliver_effects(ctx, incident.id)
    assert {e.status for e in effects_of(ctx, incident.id)} == {"done"}


def test_incidents_not_started_when_half_the_lease_is_gone_go_to_a_message_of_their_own(
    sqlite_url: str,
):
    """Slow calls must not run a batch past its lease: another worker would then deliver
    the same incident alongside this one, and its messages could go out of order."""
    with SlackServer(channels=("a", "b", "c"), post_burst=10) as slack:
        settings = make_settings(
            sqlite_url,
            slack_bot_token=slack.token,
            slack_api_url=slack.api_url,
            effect_lease_s=0.4,
        )
        ctx = replace(context_for(settings), slack=SlackClient(slack.token, slack.api_url))
        route_events(ctx, [dispute(ctx, "needs_response", f"dp_{n}") for n in range(3)], ROUTES)
        ids = sorted(i.id for i in all_incidents(ctx))
        with ctx.engine.begin() as conn:  # a channel each: no post waits for another's slot
            for incident_id, channel in zip(ids, ("#a", "#b", "#c"), strict=True):
                stmt = update(incidents).where(incidents.c.id == incident_id)
                conn.execute(stmt.values(channels=[channel]))
        deliver_messages(ctx)
        slack.hold("chat.postMessage", 0.3)  # longer than half the lease

        deliver_effects(ctx, ids)

        assert slack.posts == 1
        status = {e.incident_id: (e.status, e.failures) for e in effects_of(ctx)}
        assert status == {ids[0]: ("done", 0), ids[1]: ("pending", 0), ids[2]: ("pending", 0)}
        # One message, at once (not delayed), for the two not started. The first had nothing
        # more open in its lane when read, and nothing was owed since: it needs none.
        assert deliver_messages(ctx) == [ids[1:]]
        assert all(i.lease_until is None for i in all_incidents(ctx))


def test_what_is_owed_while_an_incident_is_delivered_goes_out_in_the_same_delivery(
    any_ctx: WorkflowContext,
):
    """An occurrence that comes while the incident's post is on its way: its delivery
    message finds the incident held and leaves it (a worker elsewhere), so the holder must
    find the update itself once it lets go, and send it after the post."""
    with SlackServer() as slack:
        ctx = replace(any_ctx, slack=SlackClient(slack.token, slack.api_url))
        route_events(ctx, [failed_payment(ctx, 0)], ROUTES)
        (incident,) = all_incidents(ctx)
        assert deliver_messages(ctx) == [incident.id]
        slack.hold("chat.postMessage", 0.5)
        delivering = threading.Thread(target=deliver_effects, args=(ctx, incident.id))
        delivering.start()
        wait_until(lambda: slack.posts == 1)  # posted, the answer on its way
        route_events(ctx, [failed_payment(ctx, 1)], ROUTES)
        assert deliver_messages(ctx) == [incident.id]  # the message the holder's lease skips
        delivering.join(10)

        (message,) = slack.messages(ctx.settings.slack_incident_channel)
        assert message.edits == 1  # the post, then its update
        assert "2 occurrences" in message.text
        assert {e.kind: e.status for e in effects_of(ctx)} == {
            "slack.post": "done",
            "slack.update": "done",
        }
        assert deliver_messages(ctx) == []
        assert all_incidents(ctx)[0].lease_until is None


def test_an_incident_with_several_effects_owed_has_them_all_sent_in_order(
    any_ctx: WorkflowContext,
):
    with SlackServer() as slack:
        ctx = replace(any_ctx, slack=SlackClient(slack.token, slack.api_url))
        route_events(ctx, [failed_payment(ctx, 0)], ROUTES)
        route_events(ctx, [failed_payment(ctx, 1)], ROUTES)  # post, then update, both owed
        (incident,) = all_incidents(ctx)
        deliver_messages(ctx)

        deliver_effects(ctx, incident.id)

        (message,) = slack.messages(ctx.settings.slack_incident_channel)
        assert message.edits == 1 and "2 occurrences" in message.text
        assert {e.status for e in effects_of(ctx)} == {"done"}
        assert deliver_messages(ctx) == []


def wait_until(check: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.services
def test_deliveries_and_batches_on_the_same_incidents_never_deadlock(postgres_url: str):
    """Workers route batches of occurrences on a few hot incidents while others lease those
    incidents to deliver their updates: every transaction takes the incidents in the same
    order, so PostgreSQL never has to break a circle of waits (each one costs a second and
    sends the router's batch event by event)."""
    ctx = context_for(make_settings(postgres_url))
    accounts = [f"acct_{k}" for k in range(5)]
    # Opened in the reverse order of their keys: ids and keys sort differently. A failed
    # payout's key sorts after the payments': each batch changes that incident as a single
    # event would (it locks the row while the batch runs), after its payments' occurrences.
    route_events(ctx, [payout_failed(ctx, 0)], ROUTES)
    for account in reversed(accounts):
        route_events(ctx, [failed_payment(ctx, 0, account)], ROUTES)
    ids = [i.id for i in all_incidents(ctx)]
    stop = time.monotonic() + 3
    errors: list[BaseException] = []

    def route(worker: int) -> None:
        n = 0
        while time.monotonic() < stop:
            n += 1
            batch = [failed_payment(ctx, f"{worker}_{n}_{k}", a) for k, a in enumerate(accounts)]
            try:
                route_events(ctx, [*batch, payout_failed(ctx, worker * 10_000 + n)], ROUTES)
            except Exception as exc:
                errors.append(exc)

    def deliver() -> None:
        while time.monotonic() < stop:
            try:
                deliver_effects(ctx, ids)
            except Exception as exc:  # a deadlock shows here as well as in the counter
                errors.append(exc)

    before = _deadlocks(postgres_url)
    threads = [threading.Thread(target=route, args=(w,)) for w in range(3)]
    threads += [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ctx.engine.dispose()  # the backends report their counts as they end

    assert errors == []
    assert _deadlocks(postgres_url) - before == 0
    # And the batches did run meanwhile: each payment incident counted many occurrences.
    counts = [i.occurrences for i in all_incidents(ctx) if "failed-payments" in i.key]
    assert len(counts) == 5 and min(counts) > 10, counts


def _deadlocks(url: str) -> int:
    """This database's deadlocks so far, once every ended backend's count is in."""
    time.sleep(1.5)
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def payout_failed(ctx: WorkflowContext, n: int) -> str:
    """Payouts to one bank account failing, each created a second after the one before."""
    payout = p.payout(payout_id=f"po_{n}", created=p.CREATED + n)
    body = p.stripe_event("payout.failed", payout, event_id=f"evt_po_{n}")
    return store_event(ctx, "stripe", "payout.failed", body)


@contextmanager
def with_slack_and_github(ctx: WorkflowContext) -> Iterator[tuple[WorkflowContext, Any, Any]]:
    """The context with Slack and a GitHub repository for incidents, each a local server."""
    with SlackServer() as slack, GitHubServer(repos=["acme/api"]) as gh:
        settings = ctx.settings.model_copy(update={"github_incident_repo": "acme/api"})
        github = IssueTracker(gh.token, gh.api_url, "acme/api", timeout=5)
        slack_client = SlackClient(slack.token, slack.api_url)
        yield replace(ctx, settings=settings, slack=slack_client, github=github), slack, gh


def test_a_new_incidents_post_and_issue_go_out_in_one_round(any_ctx: WorkflowContext):
    """The Slack lane and the GitHub lane are claimed together and recorded together: two
    commits for an incident that opens with a message and a tracking issue, where each lane
    in turn took a claim and a record of its own (six commits with the lease and release)."""
    with with_slack_and_github(any_ctx) as (ctx, slack, gh):
        route_events(ctx, [dispute(ctx, "needs_response", "dp_both")], ROUTES)
        assert sorted(e.kind for e in effects_of(ctx)) == ["github.issue", "slack.post"]
        (message,) = deliver_messages(ctx)

        assert commits_during(ctx, lambda: deliver_effects(ctx, message)) == 2

        (issue,) = gh.issues("acme/api")
        assert len(slack.messages(ctx.settings.slack_incident_channel)) == 1
        assert {e.status for e in effects_of(ctx)} == {"done"}
        (incident,) = all_incidents(ctx)
        assert incident.github_issue == issue.number and incident.lease_until is None


def test_a_rate_limited_post_does_not_hold_back_the_issue(any_ctx: WorkflowContext):
    """A 429 on Slack puts off the post alone: the issue in the same round is opened, and
    a delivery of the incident is scheduled for after Retry-After."""
    with with_slack_and_github(any_ctx) as (ctx, slack, gh):
        route_events(ctx, [dispute(ctx, "needs_response", "dp_limited")], ROUTES)
        (incident,) = all_incidents(ctx)
        deliver_messages(ctx)
        slack.rate_limit_next("chat.postMessage", retry_after_s=30)

        deliver_effects(ctx, incident.id)

        assert len(gh.issues("acme/api")) == 1
        assert slack.messages(ctx.settings.slack_incident_channel) == []
        status = {e.kind: (e.status, e.failures) for e in effects_of(ctx)}
        assert status == {"github.issue": ("done", 0), "slack.post": ("pending", 0)}
        (post,) = [e for e in effects_of(ctx) if e.kind == "slack.post"]
        assert (as_utc(post.not_before) - utcnow()).total_seconds() > 20
        assert all_incidents(ctx)[0].lease_until is None
        delayed = ctx.queue.broker.queues[dq_name(ctx.queue.queue_name)]  # type: ignore[attr-defined]
        (later,) = [json.loads(m) for m in delayed.queue]
        assert later["actor_name"] == DELIVER_ACTOR and later["args"][0] == incident.id
        assert later["options"]["eta"] / 1000 - time.time() > 20
