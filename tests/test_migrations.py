"""The migrations build the schema the models describe: a table or column added to one and
not the other would fail at run time, in production, not here."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel
from starlette.testclient import TestClient

from hub.admin import models as admin_models  # noqa: F401  (register the tables)
from hub.bootstrap import create_app
from hub.events import models  # noqa: F401
from hub.incidents import models as incident_models  # noqa: F401
from hub.runtime.db import make_engine
from hub.runtime.migrate import alembic_config, upgrade
from tests.conftest import make_settings
from tests.signing import stripe_event, stripe_request


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_the_migrated_schema_matches_the_models(database, request):
    engine = make_engine(request.getfixturevalue(database))  # both fixtures migrate to head
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert differences == []


@pytest.mark.services
def test_postgres_stores_webhook_bodies_with_lz4(postgres_url):
    """A Stripe event as sent is 2-4 KB, past the size where PostgreSQL compresses a value as
    the row goes in; pglz there cost the ingress ~twice lz4's backend CPU (migration 0009).
    The body posted through the hub comes back byte for byte, stored with lz4, in a row of its
    own (migration 0010)."""
    settings = make_settings(postgres_url)
    event = stripe_event("customer.updated", **{f"field_{i}": "x" * 40 + str(i) for i in range(80)})
    body, headers = stripe_request(json.dumps(event, indent=2).encode())
    assert len(body) > 4_000
    with TestClient(create_app(settings)) as client:
        answer = client.post("/webhooks/stripe", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        stored, method = conn.execute(
            "SELECT body, pg_column_compression(body) FROM event_bodies WHERE event_id = %s",
            (answer.json()["event_id"],),
        ).fetchone()
    assert bytes(stored) == body
    assert method == "lz4"


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_bodies_move_to_their_own_table_and_back(database, request, tmp_path):
    """Upgrading a database that holds events keeps every body, byte for byte; so does the
    way back. Migration 0010 moves them out of `events` (a status change rewrote them)."""
    if database == "sqlite_url":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0009")
    else:
        url = request.getfixturevalue(database)
        command.downgrade(alembic_config(url), "0009")
    bodies = {"evt_a": b'{"id": "a", "note": "caf\xc3\xa9"}\n', "evt_b": b"\x00\xff raw"}
    insert_old = text(
        "INSERT INTO events (id, provider, delivery_id, type, status, received_at, updated_at,"
        " runs, headers, body) VALUES (:id, 'stripe', :id, 'x', 'ignored', :at, :at, 0, '{}',"
        " :body)"
    )
    at = datetime(2026, 12, 4, tzinfo=UTC)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert_old, [{"id": k, "at": at, "body": v} for k, v in bodies.items()])
    upgrade(url)
    with engine.connect() as conn:
        moved = conn.execute(text("SELECT event_id, body FROM event_bodies")).all()
    assert {k: bytes(v) for k, v in moved} == bodies
    command.downgrade(alembic_config(url), "0009")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT id, body FROM events")).all()
    engine.dispose()
    assert {k: bytes(v) for k, v in back} == bodies
