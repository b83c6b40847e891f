"""The console's screens in Chromium: sign in and out, overview, events, one event, audit."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import insert

from hub.events.models import Status
from hub.events.store import attempts
from hub.runtime.db import write
from tests.conftest import ADMIN_TOKEN
from tests.console.conftest import Hub, shoot, sign_in
from tests.console.seed import customer_event, post_stripe, stored, wait_for


def test_sign_in_sets_a_strict_httponly_session_and_sign_out_ends_it(page: Page, hub: Hub):
    page.goto("/console/events")
    expect(page).to_have_url(f"{hub.url}/console/signin?next=/console/events")
    page.get_by_label("Admin token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("matches no HUB_ADMIN_TOKENS entry")
    shoot(page, "signin")

    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{hub.url}/console/events")
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert ADMIN_TOKEN not in cookie["value"]
    assert ADMIN_TOKEN not in page.content()
    expect(page.locator("form.who")).to_contain_text("env-token-1")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("Signed out.")
    assert page.context.cookies() == []
    page.goto("/console/")
    expect(page).to_have_url(f"{hub.url}/console/signin?next=/console/")


def test_overview_draws_traffic_and_counts_from_the_hub(page: Page, hub: Hub):
    post_stripe(hub, customer_event(f"cus_{uuid.uuid4().hex[:8]}"))
    stored(hub, f"overview.{uuid.uuid4().hex[:6]}", 2, Status.FAILED)
    hub.http.post("/webhooks/stripe", content=b"{}", headers={"stripe-signature": "t=1,v1=00"})
    sign_in(page)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    failed = page.locator(".tiles > div").filter(has_text="Failed events").locator("dd").first
    assert int(failed.inner_text()) >= 2
    charts = page.locator("figure.chart")
    expect(charts).to_have_count(4)
    hour_by_provider = charts.nth(0)
    expect(hour_by_provider.locator("figcaption")).to_contain_text("by provider, last hour")
    assert hour_by_provider.locator("rect.c-stripe").count() >= 1

    # The refused request is drawn once the rejections writer has stored it (once a second).
    def refused_drawn() -> bool:
        page.reload()
        return page.locator("figure.chart").nth(1).locator("rect.c-refused").count() >= 1

    wait_for(refused_drawn, what="the refused request in the outcome chart")
    shoot(page, "overview")


def test_events_filter_search_page_and_refresh_live(page: Page, hub: Hub):
    kind = f"paging.{uuid.uuid4().hex[:6]}"
    stored(hub, kind, 53, Status.PROCESSED)
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    wanted = post_stripe(hub, customer_event(customer))
    post_stripe(hub, customer_event(f"cus_{uuid.uuid4().hex[:10]}"))
    sign_in(page, to=f"/console/events?type={kind}")
    rows = page.locator("#event-rows tr")
    expect(rows).to_have_count(50)
    page.get_by_role("link", name="Older").click()
    expect(rows).to_have_count(3)

    page.goto("/console/events")
    page.get_by_label("Payload contains (JSON)").fill(
        json.dumps({"data": {"object": {"customer": customer}}})
    )
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(wanted)
    shoot(page, "events")

    page.goto("/console/events")
    page.get_by_label("Text in the raw body").fill(customer)
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)

    page.get_by_label("Payload contains (JSON)").fill("{not json")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text("contains is not valid JSON")

    # Live: an event arriving while the filtered list is open appears without a reload.
    fresh = f"cus_{uuid.uuid4().hex[:10]}"
    page.goto(f"/console/events?q={fresh}")
    expect(page.locator("#event-rows")).to_contain_text("No events match.")
    arrived = post_stripe(hub, customer_event(fresh))
    expect(page.locator("#event-rows")).to_contain_text(arrived, timeout=12_000)


def test_event_detail_shows_headers_body_attempts_and_the_raw_bytes(page: Page, hub: Hub):
    event_id = post_stripe(hub, customer_event(f"cus_{uuid.uuid4().hex[:8]}"))
    wait_for(
        lambda: (
            hub.http.get(
                f"/admin/events/{event_id}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
            ).json()["status"]
            == "ignored"
        )
    )
    sign_in(page, to=f"/console/events/{event_id}")
    expect(page.get_by_role("heading", name="Headers kept")).to_be_visible()
    expect(page.locator("table.kv")).to_contain_text("content-type")
    expect(page.locator("#body-pretty")).to_contain_text('"object": "customer"')
    expect(page.get_by_text("no workflow handles this kind")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the raw body").click()
    raw = Path(download.value.path()).read_bytes()
    detail = hub.http.get(
        f"/admin/events/{event_id}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    assert raw == detail["body"].encode()
    assert page.locator("#body-raw").inner_text() == detail["body"]
    shoot(page, "event")


def test_audit_lists_who_did_what_and_filters(page: Page, hub: Hub):
    sign_in(page, to="/console/audit")
    expect(page.locator("table.audit tbody")).to_contain_text("console.signin")
    page.get_by_label("Action").fill("console.signin")
    page.get_by_label("Who").fill("env-token-1")
    page.get_by_role("button", name="Apply").click()
    actions = page.locator("table.audit tbody tr td:nth-child(3)")
    assert set(actions.all_inner_texts()) == {"console.signin"}
    page.get_by_label("Who").fill("nobody")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.audit tbody")).to_contain_text("Nothing recorded.")
    page.goto("/console/audit")
    shoot(page, "audit")
    page.goto("/console/rules")
    expect(page.get_by_role("heading", name="Rules and silences")).to_be_visible()


def test_attempts_show_their_rule_and_a_stale_verdict(page: Page, hub: Hub):
    (event_id,) = stored(hub, f"timeline.{uuid.uuid4().hex[:6]}", 1, Status.PROCESSED)
    now = datetime.now(UTC)
    rows = [
        {"event_id": event_id, "workflow": "dispute_opened", "started_at": now,
         "finished_at": now + timedelta(milliseconds=42), "outcome": "stale",
         "detail": "superseded by evt_NEWER: dispute won", "error": None, "traceback": None,
         "rule": None},
        {"event_id": event_id, "workflow": "incident", "started_at": now + timedelta(seconds=1),
         "finished_at": None, "outcome": "error", "error": "SlackApiError: ratelimited",
         "traceback": "Traceback (most recent call last):\n  ...", "detail": None,
         "rule": "big-disputes"},
    ]  # fmt: skip
    with write(hub.engine) as conn:
        conn.execute(insert(attempts), rows)
    sign_in(page, to=f"/console/events/{event_id}")
    timeline = page.locator("ol.timeline > li")
    expect(timeline).to_have_count(2)
    expect(timeline.nth(0)).to_contain_text("Judged stale: superseded by evt_NEWER: dispute won")
    expect(timeline.nth(0)).to_contain_text("42 ms")
    expect(timeline.nth(1)).to_contain_text("Rule: big-disputes")
    expect(timeline.nth(1)).to_contain_text("SlackApiError: ratelimited")
    page.get_by_text("Traceback", exact=True).click()
    expect(timeline.nth(1).locator("pre")).to_contain_text("most recent call last")
