"""What an admin sees of a late event, through the real app with Slack and GitHub behind it:
the attempt says `stale` and what superseded it, the incident's timeline has the entry, and
nothing reached Slack or GitHub for it."""

from __future__ import annotations

import time
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.fakes.github import GitHubServer
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.signing import github_request
from tests.test_incident_flow import REPO, client, flow_settings, github, send, wait_for

__all__ = ["client", "flow_settings", "github"]  # fixtures, shared with the incident flow

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def admin(client: TestClient, path: str) -> Any:
    answer = client.get(path, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


def run(client: TestClient, number: int, conclusion: str) -> str:
    payload = p.workflow_run(conclusion, "main", run_number=number)
    return str(
        send(client, "/webhooks/github", github_request("workflow_run", payload))["event_id"]
    )


def settled(client: TestClient, event_id: str) -> Any:
    event = admin(client, f"/admin/events/{event_id}")
    return event if event["status"] in ("processed", "failed") else None


def test_a_late_red_run_is_stale_in_the_admin_api_and_silent_outside(
    client: TestClient, slack: SlackServer, github: GitHubServer
):
    run(client, 42, "failure")
    wait_for(lambda: slack.messages("#incidents"), what="CI broken on main")
    green = run(client, 43, "success")
    wait_for(lambda: github.issues(REPO) and github.issues(REPO)[0].state == "closed",
             what="the tracking issue closed")  # fmt: skip
    seen = lambda: (slack.messages("#incidents"), github.issues(REPO))  # noqa: E731
    # The resolve's thread reply is the last of its effects to show in Slack.
    wait_for(lambda: slack.messages("#incidents")[0].replies, what="the resolve's reply")
    before = seen()

    late = run(client, 41, "failure")
    event = wait_for(lambda: settled(client, late), what="the late event settled")

    assert event["status"] == "processed"
    (attempt,) = event["attempts"]
    assert attempt["outcome"] == "stale"
    assert green in attempt["detail"]
    (incident,) = admin(client, "/admin/incidents")["items"]
    assert incident["status"] == "resolved"
    detail = admin(client, f"/admin/incidents/{incident['id']}")
    assert [e["action"] for e in detail["timeline"]][-1] == "stale"
    assert late in detail["events"]
    # Nothing went out for it: no reopen, no Slack message or update, no GitHub comment.
    time.sleep(0.5)  # room for a stray delivery to show, had one been owed
    assert seen() == before
