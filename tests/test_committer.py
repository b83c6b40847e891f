"""The embedded ingress's hand-off of a batch to its commit thread (hub/ingest/committer.py):
every sender gets its batch's answer or its error, batches commit one after the other on
one thread, and closing waits for that thread and then releases what the writer kept."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hub.events.store import NewEvent, Stored
from hub.ingest.committer import GroupCommitter, in_thread


def ev(delivery_id: str) -> NewEvent:
    return NewEvent("stripe", delivery_id, "payment_intent.succeeded", {}, b"{}", routed=True)


def test_batches_commit_on_one_thread_and_every_sender_gets_its_answer() -> None:
    threads: set[str] = set()
    batches: list[list[str]] = []
    closed: list[bool] = []

    def insert(batch: list[NewEvent]) -> list[Stored]:
        threads.add(threading.current_thread().name)
        if any(e.delivery_id == "evt_bad" for e in batch):
            raise OSError("disk I/O error")
        batches.append([e.delivery_id for e in batch])
        return [Stored("id_" + e.delivery_id, duplicate=False) for e in batch]

    enqueued: list[str] = []
    run, close = in_thread(insert, on_close=lambda: closed.append(True))
    committer = GroupCommitter(run, enqueued.extend, on_close=close)

    async def main() -> list[Stored | BaseException]:
        first = await asyncio.gather(*(committer.submit(ev(f"evt_{i}")) for i in range(40)))
        bad = await asyncio.gather(committer.submit(ev("evt_bad")), return_exceptions=True)
        await committer.close()
        return [*first, *bad]

    answers = asyncio.run(main())
    assert [a.event_id for a in answers[:40] if isinstance(a, Stored)] == [
        f"id_evt_{i}" for i in range(40)
    ]
    assert isinstance(answers[40], OSError)
    assert threads == {"hub-commit"}
    # Grouped: the deliveries read in one pass of the event loop go in one commit.
    assert [len(b) for b in batches] == [40]
    assert sorted(enqueued) == sorted(f"id_evt_{i}" for i in range(40))
    assert closed == [True]
    assert not any(t.name == "hub-commit" for t in threading.enumerate())


def test_closing_a_committer_that_never_committed_starts_no_thread() -> None:
    closed: list[bool] = []
    run, close = in_thread(lambda batch: [], on_close=lambda: closed.append(True))
    asyncio.run(GroupCommitter(run, lambda ids: None, on_close=close).close())
    assert closed == [True]
    assert not any(t.name == "hub-commit" for t in threading.enumerate())


def test_a_batch_finishing_after_its_loop_has_gone_ends_the_thread_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A hub stopped without closing (a crash of the loop): no traceback from the thread.
    unhandled: list[object] = []
    monkeypatch.setattr(threading, "excepthook", unhandled.append)
    release = threading.Event()

    def slow(batch: list[NewEvent]) -> list[Stored]:
        release.wait(10)
        return [Stored("x", duplicate=False)]

    run, _close = in_thread(slow)

    async def abandon() -> None:
        task = asyncio.ensure_future(run([ev("evt_1")]))
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(abandon())
    release.set()
    for _ in range(100):
        if not any(t.name == "hub-commit" for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "hub-commit" for t in threading.enumerate())
    assert unhandled == []


def test_a_committer_serves_the_loop_it_is_called_on() -> None:
    """It keeps the loop it first ran on (a lookup per delivery costs a system call on 3.11),
    so a later loop, as a test client or a restarted server makes, must replace it."""

    async def insert(batch: list[NewEvent]) -> list[Stored]:
        return [Stored("id_" + e.delivery_id, duplicate=False) for e in batch]

    committer = GroupCommitter(insert, lambda ids: None)
    for i in range(2):
        stored = asyncio.run(committer.submit(ev(f"evt_{i}")))
        assert stored.event_id == f"id_evt_{i}"
