"""Exactly-once side effects in production mode (PostgreSQL, Redis, `hub worker`), where a
worker can die at the worst moment: after Slack took the post, before the hub recorded it."""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.incidents.models import Incident
from hub.runtime.db import make_engine
from tests.conftest import with_slack
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.signing import stripe_request
from tests.test_services import wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def prod_settings(prod_settings: Settings, slack: SlackServer) -> Settings:
    return with_slack(prod_settings, slack)


def incidents(settings: Settings) -> list[Incident]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        found = list(conn.execute(select(Incident.__table__)))  # type: ignore[attr-defined]
    engine.dispose()
    return found  # type: ignore[return-value]


def test_a_worker_killed_between_the_slack_post_and_its_commit_posts_once(
    prod_settings, hub_worker, slack
):
    slack.hold("chat.postMessage", 60)  # Slack has the message; the worker never hears back
    with TestClient(create_app(prod_settings)) as client:
        body, headers = stripe_request(p.stripe_event("payout.failed", p.payout()))
        assert client.post("/webhooks/stripe", content=body, headers=headers).status_code == 200
    first = hub_worker()
    wait_for(lambda: slack.posts == 1, 30, "the post to reach Slack")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    slack.hold("chat.postMessage", 0)
    assert incidents(prod_settings)[0].slack_ts is None  # the hub never recorded it

    start = time.monotonic()
    hub_worker()
    wait_for(lambda: incidents(prod_settings)[0].slack_ts is not None, 45, "the post recorded")
    print(f"\nrecovered the unrecorded post {time.monotonic() - start:.1f} s after the restart")
    (message,) = slack.messages("#incidents")
    assert message.ts == incidents(prod_settings)[0].slack_ts
    assert slack.posts == 1
