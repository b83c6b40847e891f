"""What the console changes, in Chromium: replay one and many (progress, cancel), incident
changes reaching Slack, and what it refuses: a missing scope, a bad CSRF value, a revoked
token."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from hub.admin import audit
from hub.admin.tokens import Scope, TokenStore
from hub.events.models import Status
from hub.events.queries import EventFilter, EventQueries
from tests.console.conftest import Hub, csrf, post_form, shoot, sign_in
from tests.console.seed import post_stripe, stored, wait_for
from tests.handlers import payloads as p
from tests.signing import stripe_event


def _actions(hub: Hub, action: str, target: str) -> list[audit.AuditRow]:
    return audit.list_entries(hub.engine, audit.AuditFilter(action=action), None, 500)


def test_replay_one_event(page: Page, hub: Hub):
    (event_id,) = stored(hub, f"replay.one.{uuid.uuid4().hex[:6]}", 1)
    sign_in(page, to=f"/console/events/{event_id}")
    expect(page.locator(".facts .status").first).to_have_text("failed")
    expect(page.locator("p.error")).to_contain_text("Last error: slack: channel_not_found")
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_contain_text("Replay queued")
    assert any(e.target == event_id for e in _actions(hub, "event.replay", event_id))


def test_bulk_replay_counts_confirms_and_shows_progress(page: Page, hub: Hub):
    kind = f"bulk.{uuid.uuid4().hex[:6]}"
    stored(hub, kind, 12)
    sign_in(page, to=f"/console/events?type={kind}&status=failed")
    page.get_by_role("button", name="Replay these events…").click()
    expect(page.locator("p.count")).to_contain_text("12 events match")
    shoot(page, "replay-confirm")
    page.get_by_role("button", name="Replay 12 events").click()
    expect(page.get_by_role("heading", name="Replay")).to_be_visible()
    expect(page.locator("#replay-text")).to_have_text("12 of 12 settled: done", timeout=15_000)
    assert page.locator("#replay-bar").evaluate("bar => [bar.value, bar.max]") == [12, 12]
    expect(page.locator("#cancel-form")).to_have_count(0)
    shoot(page, "replay-progress")


def test_cancelling_a_bulk_replay_puts_the_rest_back(page: Page, hub: Hub):
    kind = f"cancel.{uuid.uuid4().hex[:6]}"
    ids = stored(hub, kind, 200)  # 10 s at the tests' 20 a second
    sign_in(page, to=f"/console/events?type={kind}&status=failed")
    page.get_by_role("button", name="Replay these events…").click()
    page.get_by_role("button", name="Replay 200 events").click()
    page.get_by_role("button", name="Cancel the rest").click()
    expect(page.get_by_role("status").first).to_contain_text("Replay cancelled")
    expect(page.locator("#replay-text")).to_contain_text("done", timeout=15_000)
    (entry,) = [e for e in _actions(hub, "replay.cancel", "") if e.actor == "env-token-1"][:1]
    assert 0 < entry.detail["cancelled"] <= len(ids)
    # Events not yet taken are failed again, their last error kept; the others ran (and,
    # as no workflow takes their kind, are ignored now).
    failed = EventQueries(hub.engine).list_events(
        EventFilter(type=kind, status=Status.FAILED), None, 500
    )
    assert len(failed.items) == entry.detail["cancelled"]
    assert all(e.last_error == "slack: channel_not_found" for e in failed.items)


def test_acknowledge_resolve_and_reopen_reach_slack(page: Page, hub: Hub):
    dispute = p.dispute(dispute_id=f"dp_{uuid.uuid4().hex[:12]}")
    event_id = post_stripe(hub, stripe_event("charge.dispute.created", **dispute))
    title = "Dispute opened"

    def posted() -> list:  # type: ignore[type-arg]
        return [m for m in hub.slack.messages("#incidents") if dispute["id"] in str(m.blocks)]

    (message,) = wait_for(posted, what="the incident's Slack message")
    sign_in(page, to=f"/console/events/{event_id}")
    page.get_by_role("link", name=title).first.click()
    expect(page.locator("#incident-status")).to_have_text("open")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_contain_text("Acknowledged")
    expect(page.locator("#incident-status")).to_have_text("acknowledged")
    replies = lambda: [r.text for r in hub.slack.replies(message.channel, message.ts)]  # noqa: E731
    wait_for(lambda: "Acknowledged by env-token-1" in replies(), what="the ack thread line")

    page.get_by_label("Resolution note").fill("refunded <b>in full</b>")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#incident-status")).to_have_text("resolved")
    wait_for(
        lambda: "Resolved by env-token-1: refunded <b>in full</b>" in replies(),
        what="the resolve thread line",
    )
    expect(page.locator(".timeline")).to_contain_text("refunded <b>in full</b>")
    wait_for(lambda: [m for m in posted() if m.edits], what="the message updated in place")
    shoot(page, "incident")
    page.get_by_role("button", name="Reopen").click()
    expect(page.locator("#incident-status")).to_have_text("open")
    page.goto("/console/incidents?status=open")
    expect(page.locator("table.incidents")).to_contain_text(title)
    shoot(page, "incidents")


def test_a_read_only_token_sees_no_buttons_and_is_refused_anyway(page: Page, hub: Hub):
    secret, _ = TokenStore(hub.engine).create(
        f"viewer-{uuid.uuid4().hex[:6]}", frozenset({Scope.READ}), "tests"
    )
    (event_id,) = stored(hub, f"scope.{uuid.uuid4().hex[:6]}", 1)
    sign_in(page, secret, to=f"/console/events/{event_id}")
    expect(page.get_by_role("heading", name="Attempts")).to_be_visible()
    expect(page.get_by_role("button", name="Replay")).to_have_count(0)
    status, text = post_form(page, f"/console/events/{event_id}/replay", {"csrf": csrf(page)})
    assert status == 403 and "lacks the &#39;replay&#39; scope" in text
    page.goto("/console/events?status=failed")
    expect(page.get_by_role("button", name="Replay these events…")).to_have_count(0)
    status, _ = post_form(page, "/console/replays/dry-run", {"csrf": csrf(page)})
    assert status == 403
    assert page.evaluate(f"async () => (await fetch('/console/events/{event_id}')).status") == 200


def test_a_form_without_the_sessions_csrf_value_is_refused(page: Page, hub: Hub):
    (event_id,) = stored(hub, f"csrf.{uuid.uuid4().hex[:6]}", 1)
    sign_in(page, to=f"/console/events/{event_id}")
    for fields in ({}, {"csrf": "forged"}):
        status, text = post_form(page, f"/console/events/{event_id}/replay", fields)
        assert status == 403 and "CSRF" in text
    assert not [e for e in _actions(hub, "event.replay", event_id) if e.target == event_id]
    status, _ = post_form(page, f"/console/events/{event_id}/replay", {"csrf": csrf(page)})
    assert status == "redirect"
    wait_for(lambda: [e for e in _actions(hub, "event.replay", event_id) if e.target == event_id])


def test_revoking_a_token_ends_its_sessions(page: Page, hub: Hub):
    name = f"oncall-{uuid.uuid4().hex[:6]}"
    store = TokenStore(hub.engine)
    secret, _ = store.create(name, frozenset({Scope.READ, Scope.INCIDENTS}), "tests")
    sign_in(page, secret, to="/console/incidents")
    expect(page.locator("form.who")).to_contain_text(name)
    store.revoke(name, "tests")
    page.reload()
    expect(page).to_have_url(f"{hub.url}/console/signin?next=/console/incidents&why=revoked")
    expect(page.get_by_role("status")).to_contain_text("revoked")
    page.get_by_label("Admin token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
