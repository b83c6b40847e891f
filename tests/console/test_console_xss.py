"""Webhook payloads are hostile: markup in a body, a header, an event type, an incident's
title or link shows as text and never runs, under a CSP that would stop it anyway."""

from __future__ import annotations

import json
import uuid

from playwright.sync_api import Page, expect

from hub.web.console.render import CSP
from tests.console.conftest import Hub, shoot, sign_in
from tests.console.seed import customer_event, post_github, post_stripe, wait_for
from tests.handlers import payloads as p

XSS = '<script>window.__xss=1;alert("xss")</script>"><img src=x onerror="window.__xss=2">'
HEADER_XSS = '"><img src=x onerror=alert(3)>'


def _inert(page: Page) -> None:
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("img[src=x], script:not([src])").count() == 0


def test_markup_in_a_body_a_header_and_a_type_shows_literally(page: Page, hub: Hub):
    event_id = post_stripe(hub, customer_event(f"cus_{uuid.uuid4().hex[:8]}", name=XSS))
    typed = post_github(hub, HEADER_XSS, {"zen": XSS}, **{"user-agent": HEADER_XSS})
    sign_in(page, to=f"/console/events/{event_id}")
    response = page.reload()
    assert response is not None and response.headers["content-security-policy"] == CSP
    as_json = json.dumps(XSS)  # the body is JSON: its quotes are escaped, its < > are not
    assert as_json in page.locator("#body-raw").inner_text()
    assert as_json in page.locator("#body-pretty").inner_text()
    _inert(page)
    shoot(page, "xss-event")

    page.goto(f"/console/events/{typed}")
    expect(page.locator("h1")).to_contain_text(HEADER_XSS)
    expect(page.locator("table.kv")).to_contain_text(HEADER_XSS)
    _inert(page)
    page.goto("/console/events?provider=github")
    expect(page.locator("#event-rows")).to_contain_text(HEADER_XSS)
    page.goto(f"/console/events?q={uuid.uuid4().hex}&contains=" + '{"a":"</script><b>"}')
    expect(page.get_by_label("Payload contains (JSON)")).to_have_value('{"a":"</script><b>"}')
    _inert(page)


def test_markup_in_an_incident_and_a_javascript_link_stay_inert(page: Page, hub: Hub):
    repo = f"acme/x{uuid.uuid4().hex[:6]}"
    payload = p.workflow_run("failure", "main", workflow=XSS, repo=repo)
    payload["workflow_run"]["html_url"] = "javascript:window.__xss=3"
    payload["workflow_run"]["head_commit"]["message"] = XSS
    event_id = post_github(hub, "workflow_run", payload)

    def fed() -> bool:
        page.goto(f"/console/events/{event_id}")
        return page.locator("a[href^='/console/incidents/inc']").count() > 0

    sign_in(page, to=f"/console/events/{event_id}")
    wait_for(fed, what="the CI incident")
    page.locator("a[href^='/console/incidents/inc']").first.click()
    expect(page.locator("h1")).to_contain_text(f"CI broken on main: {XSS} in {repo}")
    expect(page.locator("p.summary")).to_contain_text(XSS)
    assert page.locator("a[href^='javascript:']").count() == 0
    _inert(page)
    page.goto("/console/incidents")
    expect(page.locator("table.incidents")).to_contain_text(XSS)
    _inert(page)
