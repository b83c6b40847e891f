"""The admin surface in production mode: PostgreSQL, Redis and a separate `hub worker`.

Required under CI=true; skipped with a reason on a machine without the services."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from hub.admin.retention import run_retention
from hub.bootstrap import create_app
from hub.config import Settings
from hub.events.models import Status, utcnow
from hub.events.store import event_bodies, events, with_bodies
from hub.runtime.db import make_engine
from tests.conftest import ADMIN_TOKEN, settings_env
from tests.signing import stripe_event, stripe_request
from tests.test_services import ROOT, counts, wait_for

pytestmark = pytest.mark.services
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def fail(settings: Settings, ids: list[str]) -> None:
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:  # as if each had failed after its last retry
        conn.execute(update(events).where(events.c.id.in_(ids))
                     .values(status=Status.FAILED, last_error="Slack was down"))  # fmt: skip
    engine.dispose()


def test_bulk_replay_through_redis_from_the_api_and_the_cli(prod_settings, hub_worker):
    hub_worker()
    with TestClient(create_app(prod_settings)) as client:
        ids = [client.post("/webhooks/stripe", content=b, headers=h).json()["event_id"]
               for b, h in (stripe_request(stripe_event()) for _ in range(300))]  # fmt: skip
        wait_for(lambda: counts(prod_settings) == {"ignored": 300}, 30, "300 ignored")
        fail(prod_settings, ids[:200])

        r = client.post("/admin/replays", json={"status": "failed", "until": "2100-01-01T00:00:00"},
                        headers=AUTH)  # fmt: skip
        assert r.status_code == 202
        body = r.json()
        assert (body["matched"], body["replayed"]) == (200, 200)
        wait_for(
            lambda: client.get(f"/admin/replays/{body['replay_id']}", headers=AUTH).json()["done"],
            30,
            "the API replay to finish",
        )
        assert counts(prod_settings) == {"ignored": 300}

    # The CLI hands events to the same Redis queue the workers read.
    fail(prod_settings, ids[200:])
    cli = subprocess.run(
        [sys.executable, "-m", "hub.cli", "replay", "--status", "failed", "--timeout", "30"],
        env=settings_env(prod_settings), cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("100 matched, 100 replayed, 0 skipped")
    assert counts(prod_settings) == {"ignored": 300}


def test_retention_on_postgresql_keeps_metadata(prod_settings):
    with TestClient(create_app(prod_settings)) as client:
        ids = [client.post("/webhooks/stripe", content=b, headers=h).json()["event_id"]
               for b, h in (stripe_request(stripe_event()) for _ in range(5))]  # fmt: skip
    engine = make_engine(prod_settings.database_url)
    with engine.begin() as conn:
        conn.execute(update(events).where(events.c.id.in_(ids)).values(status=Status.PROCESSED))
    later = utcnow() + timedelta(days=31)  # as if a month had passed
    result = run_retention(engine, prod_settings, "tester", now=later)
    assert (result.processed_redacted, result.failed_redacted) == (5, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(events, event_bodies.c.body).select_from(with_bodies).where(events.c.id.in_(ids))
        ).all()
    engine.dispose()
    assert {bytes(r.body) for r in rows} == {b""}
    assert all(r.redacted_at is not None and r.type and r.delivery_id for r in rows)
