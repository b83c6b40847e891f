"""The API's hand-off of stored ids to the queue (hub/runtime/queue.py Enqueuer): a quiet hub
sends an id at once; paced (workers on a Redis queue), ids that keep coming fast go out
together, one message a hold, however empty the queue reads, and a trickle as it comes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker

from hub.runtime.queue import MESSAGE_IDS, PACED_IDS, Enqueuer, EventQueue

HOLD_S = 0.3


@pytest.fixture
def broker() -> StubBroker:
    stub = StubBroker()
    stub.declare_queue("hub")
    return stub


def sent(broker: StubBroker) -> list[list[str]]:
    """The ids of each message sent so far, taken off the queue."""
    queue = broker.queues["hub"]
    found = []
    while not queue.empty():
        found.append(json.loads(queue.get_nowait())["args"][0])
    return found


def enqueuer(broker: StubBroker, **kwargs: Any) -> Iterator[Enqueuer]:
    running = Enqueuer(EventQueue(broker, "hub"), lambda ids: None, HOLD_S, **kwargs)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def paced(broker: StubBroker) -> Iterator[Enqueuer]:
    yield from enqueuer(broker, paced=True)


@pytest.fixture
def unpaced(broker: StubBroker) -> Iterator[Enqueuer]:
    yield from enqueuer(broker)


def until_sent(broker: StubBroker, timeout_s: float = 5) -> list[list[str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := sent(broker):
            return found
        time.sleep(0.005)
    raise AssertionError("nothing sent")


def test_a_quiet_hub_sends_an_id_at_once(broker: StubBroker, paced: Enqueuer) -> None:
    start = time.monotonic()
    paced.submit(["first"])
    assert until_sent(broker) == [["first"]]
    assert time.monotonic() - start < HOLD_S / 2


def test_paced_ids_that_keep_coming_go_out_together_once_a_hold(
    broker: StubBroker, paced: Enqueuer
) -> None:
    burst = [f"burst{n}" for n in range(PACED_IDS)]
    paced.submit(burst)
    assert until_sent(broker) == [burst]
    first_sent = time.monotonic()
    for n in range(5):
        paced.submit([f"next{n}"])
        time.sleep(0.01)
    assert until_sent(broker) == [[f"next{n}" for n in range(5)]]
    assert time.monotonic() - first_sent >= HOLD_S * 0.9


def test_paced_a_trickle_goes_out_as_it_comes(broker: StubBroker, paced: Enqueuer) -> None:
    # Fewer than PACED_IDS a hold: holding would only delay each incident.
    start = time.monotonic()
    messages = []
    for n in range(5):
        paced.submit([f"id{n}"])
        messages += until_sent(broker)
    assert messages == [[f"id{n}"] for n in range(5)]
    assert time.monotonic() - start < HOLD_S


def test_unpaced_a_few_ids_go_out_as_they_come(broker: StubBroker, unpaced: Enqueuer) -> None:
    # Embedded, the workers' own count of unfinished messages says when they are busy.
    messages = []
    for n in range(3):
        unpaced.submit([f"id{n}"])
        messages += until_sent(broker)
    assert messages == [["id0"], ["id1"], ["id2"]]


def test_paced_a_full_message_goes_out_without_waiting_for_the_hold(
    broker: StubBroker, paced: Enqueuer
) -> None:
    # Submissions during a hold do not wake the thread (one wake per commit cost the event
    # loop its core), except once a message's worth waits: that goes out at once.
    paced.submit([f"burst{n}" for n in range(PACED_IDS)])
    until_sent(broker)
    held_from = time.monotonic()
    paced.submit(["early"])
    time.sleep(HOLD_S / 6)
    assert sent(broker) == [], "one id is held while ids come fast"
    paced.submit([f"full{n}" for n in range(MESSAGE_IDS)])
    messages = until_sent(broker)
    assert time.monotonic() - held_from < HOLD_S * 0.6
    assert [len(m) for m in messages] == [MESSAGE_IDS, 1]
    assert messages[0][0] == "early"


def test_stop_sends_every_id_submitted_before_it(broker: StubBroker) -> None:
    running = Enqueuer(EventQueue(broker, "hub"), lambda ids: None, HOLD_S, paced=True)
    running.start()
    running.submit([f"burst{n}" for n in range(PACED_IDS)])
    until_sent(broker)
    running.submit(["held0", "held1"])
    running.submit(["held2"])
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < HOLD_S * 0.6, "stop does not wait out the hold"
    assert sent(broker) == [["held0", "held1", "held2"]]
