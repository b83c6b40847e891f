"""Rules and silences in Chromium: the rules in force, a draft tried on stored events (the
tables `hub rules test` prints), silences added and expired, scope limits, and hostile text
in a draft or a silence shown, never run."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from hub.admin.tokens import Scope, TokenStore
from hub.rules import silences
from tests.console.conftest import Hub, csrf, post_form, shoot, sign_in
from tests.console.seed import post_stripe, wait_for
from tests.handlers import payloads as p

XSS = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def test_a_draft_is_tried_on_stored_events_with_no_side_effect(page: Page, hub: Hub):
    dispute = f"dp_{uuid.uuid4().hex[:8]}"
    post_stripe(hub, p.stripe_event("charge.dispute.created", p.dispute(dispute, 250_000)))
    sign_in(page, to="/console/rules")
    expect(page.get_by_text("No rules file (HUB_RULES_FILE)")).to_be_visible()
    page.get_by_label("Draft rules (YAML)").fill(
        "rules:\n  - name: big-disputes\n    match: {type: 'charge.dispute.*', "
        "where: payload.data.object.amount >= 100000}\n"
        "    route: {slack_channel: '#payments-oncall', severity: sev1}\n"
    )
    page.get_by_label("Since").fill("1h")
    page.get_by_role("button", name="Test the draft").click()
    matches = page.locator("#rule-matches tbody tr").first
    expect(matches).to_contain_text("big-disputes")
    assert int(matches.locator("td").nth(2).inner_text()) >= 1
    expect(page.locator("#would-result")).to_contain_text("Slack #payments-oncall")
    expect(page.locator("#differences")).to_contain_text(f"stripe:dispute:{dispute} (sev1)")
    shoot(page, "rules-test")
    # A draft that does not compile: its errors, with their lines, and the draft kept.
    page.get_by_label("Draft rules (YAML)").fill(
        "rules:\n  - name: x\n    match: {where: 'payload.a =='}\n    suppress: {}\n"
    )
    page.get_by_role("button", name="Test the draft").click()
    expect(page.locator("#draft-errors")).to_contain_text("draft:3: rule x: match: where:")
    expect(page.get_by_label("Draft rules (YAML)")).to_have_value(
        "rules:\n  - name: x\n    match: {where: 'payload.a =='}\n    suppress: {}\n"
    )
    assert hub.http.get("/admin/rules", headers=_auth()).json()["rules"] == []


def test_silences_are_added_listed_and_expired(page: Page, hub: Hub):
    reason = f"upgrade {uuid.uuid4().hex[:6]}"
    sign_in(page, to="/console/rules")
    page.get_by_label("Match (CEL)").fill('provider == "github"')
    page.get_by_label("For", exact=True).fill("2h")
    page.get_by_label("Reason").fill(reason)
    page.get_by_role("button", name="Add silence").click()
    expect(page.get_by_role("status")).to_contain_text("Silence added.")
    row = page.locator("#silences-table tbody tr", has_text=reason)
    expect(row).to_contain_text("active")
    shoot(page, "rules-silences")
    (silence,) = [s for s in silences.listed(hub.engine) if s.reason == reason]
    page.get_by_role("button", name=f"Expire silence {silence.id}").click()
    expect(page.get_by_role("status")).to_contain_text("Silence expired")
    expect(page.locator("#silences-table tbody tr", has_text=reason)).to_have_count(0)
    wait_for(lambda: silences.listed(hub.engine, include_expired=True))
    # A bad match is refused with the reason, and what was typed is kept (escaped).
    page.get_by_label("Match (CEL)").fill(XSS)
    page.get_by_label("For", exact=True).fill("1h")
    page.get_by_role("button", name="Add silence").click()
    expect(page.locator("#silence-error")).to_contain_text("match:")
    expect(page.get_by_label("Match (CEL)")).to_have_value(XSS)


def test_hostile_text_in_a_draft_is_shown_not_run(page: Page, hub: Hub):
    sign_in(page, to="/console/rules")
    page.get_by_label("Draft rules (YAML)").fill(f"rules:\n  - name: '{XSS}'\n    suppress: {{}}\n")
    page.get_by_role("button", name="Test the draft").click()
    expect(page.locator("#draft-errors")).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator("#draft-errors img").count() == 0  # text, not markup


def test_a_read_only_token_sees_no_silence_or_reload_controls(page: Page, hub: Hub):
    secret, _ = TokenStore(hub.engine).create(
        f"reader-{uuid.uuid4().hex[:6]}", frozenset({Scope.READ}), "tests"
    )
    sign_in(page, secret, to="/console/rules")
    expect(page.get_by_role("button", name="Test the draft")).to_be_visible()
    expect(page.get_by_role("button", name="Add silence")).to_have_count(0)
    status, text = post_form(page, "/console/silences",
                             {"csrf": csrf(page), "match": "true", "for": "1h"})  # fmt: skip
    assert status == 403 and "incidents" in text
    status, _ = post_form(page, "/console/rules/reload", {"csrf": csrf(page)})
    assert status == 403


def _auth() -> dict[str, str]:
    from tests.conftest import ADMIN_TOKEN

    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
