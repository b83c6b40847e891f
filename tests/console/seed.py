"""Events and incidents for the console's tests, made the way the hub makes them: signed
webhooks through the running hub, or rows through its own store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from hub.events.batch_insert import NewEvent
from hub.events.models import Status
from hub.events.store import EventStore, events
from hub.runtime.db import write
from tests.console.conftest import Hub
from tests.signing import github_request, stripe_event, stripe_request

XSS = '<script>alert("xss")</script>"><img src=x onerror=alert(1)>'


def post_stripe(hub: Hub, event: dict[str, Any]) -> str:
    body, headers = stripe_request(event)
    answer = hub.http.post("/webhooks/stripe", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["event_id"])


def post_github(hub: Hub, event: str, payload: dict[str, Any], **headers: str) -> str:
    body, signed = github_request(event, payload)
    answer = hub.http.post("/webhooks/github", content=body, headers=signed | headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["event_id"])


def customer_event(customer: str, **fields: Any) -> dict[str, Any]:
    obj = {"id": customer, "object": "customer", "email": "a@example.com", **fields}
    event = stripe_event("customer.updated", **obj)
    event["data"]["object"]["customer"] = customer
    return event


def stored(hub: Hub, kind: str, count: int, status: Status = Status.FAILED) -> list[str]:
    """`count` Stripe events of type `kind`, stored straight away with `status`."""
    batch = [
        NewEvent(
            "stripe",
            f"evt_{uuid.uuid4().hex}",
            kind,
            {"content-type": "application/json"},
            b'{"object": "event", "type": "%s"}' % kind.encode(),
            routed=False,
        )
        for _ in range(count)
    ]
    ids = [s.event_id for s in EventStore(hub.engine).insert(batch, Status.IGNORED)]
    with write(hub.engine) as conn:
        conn.execute(
            update(events)
            .where(events.c.id.in_(ids))
            .values(status=status, last_error="slack: channel_not_found", deadline=None)
        )
    return ids


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.1)
