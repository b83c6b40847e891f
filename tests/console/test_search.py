"""Payload search and bulk-replay cancel on SQLite and PostgreSQL (hub.admin)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from sqlalchemy import update

from hub.admin.replay import Replayer
from hub.admin.replay_cancel import cancel_replay
from hub.admin.search import PayloadSearch, SearchError, contains, parse_contains, search_events
from hub.events.batch_insert import NewEvent
from hub.events.models import Status
from hub.events.queries import EventFilter
from hub.events.store import EventStore, events
from hub.runtime.db import make_engine, write

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _store(engine, *bodies: tuple[dict[str, str], bytes]) -> list[str]:  # type: ignore[no-untyped-def]
    batch = [
        NewEvent("github", f"d{i}", "push", h, b, routed=False) for i, (h, b) in enumerate(bodies)
    ]
    return [s.event_id for s in EventStore(engine).insert(batch, Status.IGNORED)]


def test_text_and_containment_find_json_and_form_bodies(engine):
    wanted = {"data": {"object": {"customer": "cus_123", "amount": 5}}}
    json_id, form_id, other, binary, _ = _store(
        engine,
        (JSON, json.dumps(wanted | {"extra": [1, 2]}).encode()),
        (FORM, b"payload=" + quote(json.dumps(wanted)).encode()),
        (JSON, json.dumps({"data": {"object": {"customer": "cus_1234"}}}).encode()),
        (JSON, b"\xff\xfe cus_123 100%_off"),
        (JSON, b'{"a": "50% off_now"}'),
    )
    find = lambda s: [e.id for e in search_events(engine, EventFilter(), s, None, limit=10).items]  # noqa: E731
    pattern = parse_contains('{"data": {"object": {"customer": "cus_123"}}}')
    assert find(PayloadSearch(contains=pattern)) == sorted([form_id, json_id], reverse=True)
    assert set(find(PayloadSearch(text="cus_123"))) == {json_id, form_id, other, binary}
    assert find(PayloadSearch(text="100%_off")) == [binary]  # LIKE's wildcards are literal
    assert find(PayloadSearch(text="%_o")) == [binary]
    assert find(PayloadSearch(contains={"data": {"object": {"amount": 5.0}}})) == sorted(
        [form_id, json_id], reverse=True
    )
    assert find(PayloadSearch(contains={"extra": [2]})) == [json_id]


def test_a_search_pages_and_stops_at_its_budget(engine):
    # Newest first is id order (ids made in one millisecond are not in insertion order).
    ids = sorted(_store(engine, *[(JSON, b'{"n": %d, "k": "v"}' % i) for i in range(7)]))
    search = PayloadSearch(contains={"k": "v"})
    page = search_events(engine, EventFilter(), search, None, limit=3)
    assert [e.id for e in page.items] == ids[::-1][:3] and page.next_cursor
    page = search_events(engine, EventFilter(), search, page.next_cursor, limit=3)
    assert [e.id for e in page.items] == ids[::-1][3:6]
    short = search_events(
        engine, EventFilter(), PayloadSearch(contains={"n": 99}), None, limit=3, budget=2
    )
    assert short.items == [] and short.budget_spent and short.scanned == 2 and short.next_cursor


@pytest.mark.parametrize("text", ["[1", '"a string"', "3"])
def test_containment_wants_an_object_or_array(text: str):
    with pytest.raises(SearchError):
        parse_contains(text)


def test_containment_follows_jsonb_rules():
    assert contains({"a": 1, "b": 2}, {"a": 1})
    assert not contains({"a": True}, {"a": 1})
    assert contains([1, [2, 3]], [[3]])
    assert not contains({"a": "1"}, {"a": 1})


def test_cancelling_a_replay_restores_each_event_as_it_was(engine, settings):
    failed, _ = _store(engine, (JSON, b"{}"), (JSON, b"{}"))
    with write(engine) as conn:
        conn.execute(
            update(events)
            .where(events.c.id == failed)
            .values(status=Status.FAILED, last_error="boom")
        )

    class NoQueue:
        def send(self, *a: object, **k: object) -> None: ...

    replayer = Replayer(engine, NoQueue(), per_second=1, grace_s=60)  # type: ignore[arg-type]
    result = replayer.replay_matching(EventFilter(), "tests", dry_run=False)
    assert result.replay_id and result.replayed == 2
    assert cancel_replay(engine, result.replay_id, "tests") == 2
    progress = replayer.progress(result.replay_id)
    assert progress is not None and progress.by_status == {"failed": 1, "ignored": 1}
    assert cancel_replay(engine, "rpl_nope", "tests") is None


def test_the_admin_api_searches_payloads_too(settings):
    from starlette.testclient import TestClient

    from hub.bootstrap import create_app
    from tests.conftest import ADMIN_TOKEN
    from tests.signing import stripe_event, stripe_request

    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with TestClient(create_app(settings)) as client:
        ids = []
        for customer in ("cus_123", "cus_456"):
            event = stripe_event("customer.updated", id=customer, customer=customer)
            body, headers = stripe_request(event)
            ids.append(client.post("/webhooks/stripe", content=body, headers=headers).json())
        wanted = '{"data": {"object": {"customer": "cus_123"}}}'
        page = client.get("/admin/events", params={"contains": wanted}, headers=auth).json()
        assert [e["id"] for e in page["items"]] == [ids[0]["event_id"]]
        page = client.get("/admin/events", params={"q": "cus_456"}, headers=auth).json()
        assert [e["id"] for e in page["items"]] == [ids[1]["event_id"]]
        bad = client.get("/admin/events", params={"contains": "[1"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["error"] == "bad_search"


def test_the_admin_api_cancels_a_bulk_replay(settings):
    from starlette.testclient import TestClient

    from hub.bootstrap import create_app
    from tests.conftest import ADMIN_TOKEN

    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    slow = settings.model_copy(update={"replay_per_second": 1.0})
    with TestClient(create_app(slow)) as client:
        engine = make_engine(settings.database_url)
        # Hand-offs go in batches of 50: at one a second the third batch waits 100 s.
        ids = _store(engine, *[(JSON, b"{}") for _ in range(120)])
        with write(engine) as conn:
            conn.execute(update(events).values(status=Status.FAILED, last_error="boom"))
        started = client.post("/admin/replays", json={"status": "failed"}, headers=auth).json()
        cancel = f"/admin/replays/{started['replay_id']}/cancel"
        answer = client.post(cancel, headers=auth).json()
        assert 20 <= answer["cancelled"] <= len(ids)
        missing = client.post("/admin/replays/rpl_none/cancel", headers=auth)
        assert missing.status_code == 404
        engine.dispose()
