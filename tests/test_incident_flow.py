"""A responder's view, end to end: signed webhooks into the real app (embedded mode), its
workers talking to local servers that answer like Slack's Web API and GitHub's REST API."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.incidents.models import Effect, Incident
from hub.runtime.db import make_engine
from tests.conftest import make_settings
from tests.fakes.github import GitHubServer
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.signing import github_request, slack_request, stripe_request

REPO = "acme/ops"


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer(repos=(REPO,)) as server:
        yield server


@pytest.fixture
def flow_settings(sqlite_url: str, slack: SlackServer, github: GitHubServer) -> Settings:
    return make_settings(
        sqlite_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        slack_incident_channel="#incidents",
        github_token=github.token,
        github_api_url=github.api_url,
        github_incident_repo=REPO,
    )


@pytest.fixture
def client(flow_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(flow_settings)) as c:
        yield c


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def settled_effect(settings: Settings, kind: str) -> Any:
    """The one effect of `kind`, once its worker has committed how it went: the message or
    issue shows at Slack or GitHub a moment before that commit."""

    def settled() -> Any:
        found = [e for e in rows(settings, Effect) if e.kind == kind]
        return found if found and found[0].status not in ("pending", "attempting") else None

    (effect,) = wait_for(settled, what=f"the {kind} effect settled")
    return effect


def send(client: TestClient, path: str, request: tuple[bytes, dict[str, str]]) -> Any:
    body, headers = request
    r = client.post(path, content=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def stripe(client: TestClient, event: dict[str, Any]) -> Any:
    event = {**event, "id": f"evt_{uuid.uuid4().hex[:20]}"}
    return send(client, "/webhooks/stripe", stripe_request(event))


def press(client: TestClient, slack: SlackServer, incident_id: str, action: str, user: str) -> Any:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "response_url": slack.response_url(f"press-{uuid.uuid4().hex[:6]}"),
        "actions": [{"action_id": action, "value": incident_id, "type": "button"}],
    }
    body = b"payload=" + json.dumps(payload).encode()
    return send(client, "/webhooks/slack/interactions",
                slack_request(body, "application/x-www-form-urlencoded"))  # fmt: skip


def rows(settings: Settings, model: Any) -> list[Any]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        found = list(conn.execute(select(model)))
    engine.dispose()
    return found


def buttons(message: Any) -> list[str]:
    return [
        element["action_id"]
        for block in message.blocks or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_a_dispute_is_one_message_kept_current_and_one_tracked_issue(
    client, slack, github, flow_settings
):
    stripe(client, p.stripe_event("charge.dispute.created", p.dispute()))
    (message,) = wait_for(lambda: slack.messages("#incidents"), what="the incident message")
    assert buttons(message) == ["incident.ack", "incident.resolve"]
    (incident,) = rows(flow_settings, Incident)
    wait_for(lambda: github.issues(REPO), what="the tracking issue")

    press(client, slack, incident.id, "incident.ack", "U1")
    wait_for(lambda: len(slack.replies(message.channel, message.ts)) == 1, what="a thread reply")
    (reply,) = slack.replies(message.channel, message.ts)
    assert reply.text == "Acknowledged by <@U1>"
    updated = wait_for(lambda: [m for m in slack.messages("#incidents") if m.edits] or None)
    assert buttons(updated[0]) == ["incident.resolve"]

    stripe(client, p.stripe_event("charge.dispute.closed", p.dispute(status="won")))
    wait_for(lambda: github.issues(REPO)[0].state == "closed", what="the issue closed")
    wait_for(lambda: len(slack.replies(message.channel, message.ts)) == 2, what="resolved reply")
    (message,) = slack.messages("#incidents")  # still the one message: updated, never reposted
    assert buttons(message) == []
    replies = [r.text for r in slack.replies(message.channel, message.ts)]
    assert replies[1].startswith("Resolved by stripe")
    (issue,) = github.issues(REPO)
    assert len(issue.comments) == 2  # acknowledged, resolved
    assert slack.rate_limited == 0


def test_a_burst_of_a_thousand_failed_payments_makes_a_handful_of_slack_calls(
    client, slack, flow_settings
):
    def one(n: int) -> None:
        intent = p.payment_intent_failed(intent_id=f"pi_{n}")
        stripe(client, p.stripe_event("payment_intent.payment_failed", intent, account="acct_9"))

    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(1000)))
    burst_s = time.monotonic() - start

    def settled() -> bool:
        (incident,) = rows(flow_settings, Incident)
        pending = [e for e in rows(flow_settings, Effect) if e.status != "done"]
        return incident.occurrences == 1000 and not pending

    wait_for(settled, timeout=60, what="every occurrence counted and the message current")
    (message,) = slack.messages("#incidents")
    assert "1000" in json.dumps(message.blocks)
    assert slack.posts == 1
    # Coalesced: one update a second at most while occurrences keep coming, not one per event.
    updates = [c.time for c in slack.calls if c.path == "/api/chat.update"]
    gaps = [b - a for a, b in itertools.pairwise(updates)]
    print(f"\n1000 events in {burst_s:.1f} s: 1 post, {len(updates)} updates, 0 429s")
    assert len(updates) == message.edits <= 20
    assert min(gaps, default=1.0) >= 0.9
    assert slack.rate_limited == 0


def test_a_429_waits_its_retry_after_without_counting_as_a_failure(client, slack, flow_settings):
    slack.rate_limit_next("chat.postMessage", retry_after_s=1)
    stripe(client, p.stripe_event("payout.failed", p.payout()))
    wait_for(lambda: slack.messages("#incidents"), what="the message after the 429")
    post = settled_effect(flow_settings, "slack.post")
    assert (post.status, post.failures) == ("done", 0)
    assert (slack.rate_limited, slack.posts) == (1, 1)


def test_slash_command_lists_open_incidents_through_the_response_url(client, slack):
    stripe(client, p.stripe_event("payout.failed", p.payout()))
    wait_for(lambda: slack.messages("#incidents"), what="the incident")
    form = f"command=%2Fincident&text=list&user_id=U7&response_url={slack.response_url('list-1')}"
    answer = send(client, "/webhooks/slack/commands",
                  slack_request(form.encode(), "application/x-www-form-urlencoded"))  # fmt: skip
    assert answer["text"].startswith("Working on")
    (response,) = wait_for(lambda: slack.responses("list-1"), what="the command's answer")
    assert "Payout" in json.dumps(response)


def test_ci_red_then_green_resolves_by_itself(client, slack, github):
    for run, conclusion in enumerate(("failure", "success"), start=42):
        payload = p.workflow_run(conclusion, "main", run_number=run)
        send(client, "/webhooks/github", github_request("workflow_run", payload))
        if conclusion == "failure":
            wait_for(lambda: slack.messages("#incidents"), what="CI broken on main")
    wait_for(lambda: github.issues(REPO) and github.issues(REPO)[0].state == "closed")
    (message,) = slack.messages("#incidents")
    assert buttons(message) == []


def command(client: TestClient, slack: SlackServer, text: str, user: str = "U7") -> str:
    """Run `/incident <text>`; the id of the response_url its answer goes to."""
    rid = f"cmd-{uuid.uuid4().hex[:6]}"
    form = (
        f"command=%2Fincident&text={text.replace(' ', '+')}&user_id={user}"
        f"&response_url={slack.response_url(rid)}"
    )
    send(client, "/webhooks/slack/commands",
         slack_request(form.encode(), "application/x-www-form-urlencoded"))  # fmt: skip
    return rid


def test_incident_commands_open_acknowledge_and_resolve(client, slack, flow_settings):
    opened = command(client, slack, "open Checkout latency is up")
    (answer,) = wait_for(lambda: slack.responses(opened), what="the open answer")
    (incident,) = rows(flow_settings, Incident)
    assert answer["text"] == f"Opened {incident.id}: Checkout latency is up"
    (message,) = wait_for(lambda: slack.messages("#incidents"), what="the incident message")

    ack = command(client, slack, f"ack {incident.id}", user="U8")
    wait_for(lambda: slack.responses(ack), what="the ack answer")
    again = command(client, slack, f"ack {incident.id}", user="U9")
    (refused,) = wait_for(lambda: slack.responses(again), what="the second ack's answer")
    assert refused["text"] == "Nothing changed: already acknowledged by <@U8>."
    resolve = command(client, slack, f"resolve {incident.id}")
    wait_for(lambda: slack.responses(resolve), what="the resolve answer")

    wait_for(lambda: len(slack.replies(message.channel, message.ts)) == 2, what="two thread lines")
    texts = [r.text for r in slack.replies(message.channel, message.ts)]
    assert texts == ["Acknowledged by <@U8>", "Resolved by <@U7>"]
    (incident,) = rows(flow_settings, Incident)
    assert (incident.status, incident.resolved_by) == ("resolved", "<@U7>")
    help_ = command(client, slack, "dance")
    assert wait_for(lambda: slack.responses(help_))[0]["text"].startswith("Usage:")


def test_a_post_whose_answer_was_lost_is_found_not_repeated(client, slack, flow_settings):
    # Slack stores the message but answers 500: the hub must not post it a second time.
    slack.fail_next("chat.postMessage", 1, status=500, applied=True)
    stripe(client, p.stripe_event("payout.failed", p.payout()))
    recorded = lambda: [i.slack_ts for i in rows(flow_settings, Incident) if i.slack_ts]  # noqa: E731
    wait_for(recorded, timeout=20, what="the ts recorded")
    (message,) = slack.messages("#incidents")
    assert rows(flow_settings, Incident)[0].slack_ts == message.ts
    post = settled_effect(flow_settings, "slack.post")
    assert (post.status, post.failures) == ("done", 1)


def test_github_rate_limit_waits_without_failing(client, slack, github, flow_settings):
    github.secondary_rate_limit(1, status=403, retry_after_s=1)
    stripe(client, p.stripe_event("payout.failed", p.payout()))
    wait_for(lambda: github.issues(REPO), timeout=20, what="the issue after the wait")
    issue_effect = settled_effect(flow_settings, "github.issue")
    assert (issue_effect.status, issue_effect.failures) == ("done", 0)
    assert len(github.issues(REPO)) == 1


def test_an_unacknowledged_incident_is_escalated_once(sqlite_url, slack):
    settings = make_settings(
        sqlite_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        slack_oncall="<!subteam^S0NCALL>",
        escalate_after_s=0.5,
        sweep_interval_s=0.2,
    )
    with TestClient(create_app(settings)) as client:
        stripe(client, p.stripe_event("payout.failed", p.payout()))
        (message,) = wait_for(lambda: slack.messages("#incidents"), what="the incident")
        wait_for(lambda: slack.replies(message.channel, message.ts), what="the escalation")
        time.sleep(1.5)  # several more housekeeping rounds: still one escalation
    (reply,) = slack.replies(message.channel, message.ts)
    assert reply.text.startswith("<!subteam^S0NCALL> Still unacknowledged")
