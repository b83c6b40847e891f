"""Group commit: every delivery that arrives while a commit is running goes into the next one.

A commit costs about the same for one row as for a hundred (the fsync dominates), so under
load the hub answers many senders per commit instead of queueing them behind one another."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from queue import SimpleQueue

from hub.events.store import NewEvent, Stored

MAX_BATCH = 500

Insert = Callable[[Sequence[NewEvent]], Awaitable[list[Stored]]]


class GroupCommitter:
    def __init__(
        self,
        insert: Insert,
        on_stored: Callable[[list[str]], None],
        max_in_flight: int = 1,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._insert = insert
        self._on_stored = on_stored
        # SQLite has one writer, so a second commit in flight only waits for the lock (and
        # halves the batches). A PostgreSQL commit is mostly the server's fsync wait, which
        # the next batch can overlap: measured here, 2 in flight gave +20% and a lower p99.
        self._max_in_flight = max_in_flight
        self._on_close = on_close
        self._pending: list[tuple[NewEvent, asyncio.Future[Stored]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, event: NewEvent) -> Stored:
        # The loop is looked up once, not per delivery: on Python 3.11 every
        # get_running_loop() is a getpid() system call (its check for a fork).
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Stored] = loop.create_future()
        self._pending.append((event, waiter))
        if not self._scheduled and len(self._in_flight) < self._max_in_flight:
            # call_soon, not now: let the other requests read in this loop pass join in.
            self._scheduled = True
            loop.call_soon(self._flush, loop)
        return await waiter

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        if self._pending and len(self._in_flight) < self._max_in_flight:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            task = loop.create_task(self._commit(batch))
            self._in_flight.add(task)  # a task nobody references can be collected mid-run
            task.add_done_callback(lambda t: self._finished(loop, t))

    async def _commit(self, batch: list[tuple[NewEvent, asyncio.Future[Stored]]]) -> None:
        try:
            stored = await self._insert([ev for ev, _ in batch])
        except Exception as exc:
            for _, waiter in batch:
                if not waiter.done():  # done: the sender hung up
                    waiter.set_exception(exc)
            return
        # Only new rows of routed kinds go to the queue; the rest were stored `ignored`.
        fresh = [
            s.event_id
            for (ev, _), s in zip(batch, stored, strict=True)
            if ev.routed and not s.duplicate
        ]
        if fresh:
            self._on_stored(fresh)
        for (_, waiter), result in zip(batch, stored, strict=True):
            if not waiter.done():
                waiter.set_result(result)

    def _finished(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._pending and not self._scheduled:
            self._flush(loop)

    async def close(self) -> None:
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._on_close is not None:
            await self._on_close()


def in_thread(
    insert: Callable[[Sequence[NewEvent]], list[Stored]],
    on_close: Callable[[], None] | None = None,
) -> tuple[Insert, Callable[[], Awaitable[None]]]:
    """A blocking insert (SQLite) run on a thread of its own; the awaitable insert and its
    close, which calls `on_close` once the last batch has finished.

    A queue and `call_soon_threadsafe`, not `run_in_executor`: the executor's submit, its
    future and the chaining of that future to the loop's cost 66-71 us of CPU a batch
    against 24-26 here (measured, a batch handed over and answered, both threads counted),
    most of it Python on the event loop's GIL."""
    batches: SimpleQueue[_Job | None] = SimpleQueue()
    thread = threading.Thread(target=_commit_batches, args=(insert, batches), name="hub-commit")
    thread.daemon = True  # close() ends it; a process that never closes must still exit

    async def run(batch: Sequence[NewEvent]) -> list[Stored]:
        if thread.ident is None:  # started at the first batch, as the executor it replaces
            thread.start()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Stored]] = loop.create_future()
        batches.put((batch, answer, loop))
        return await answer

    async def close() -> None:
        if thread.ident is not None:
            batches.put(None)
            # The committer has awaited every batch in flight: the thread ends at once.
            thread.join()
        if on_close is not None:
            on_close()

    return run, close


_Job = tuple[Sequence[NewEvent], "asyncio.Future[list[Stored]]", asyncio.AbstractEventLoop]


def _commit_batches(
    insert: Callable[[Sequence[NewEvent]], list[Stored]], batches: SimpleQueue[_Job | None]
) -> None:
    while (job := batches.get()) is not None:
        batch, answer, loop = job
        try:
            result, error = insert(batch), None
        except BaseException as exc:  # the waiting senders get it (503), as from any insert
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(_settle, answer, result, error)
        except RuntimeError:  # the loop has closed: nobody is waiting
            return


def _settle(
    answer: asyncio.Future[list[Stored]], result: list[Stored] | None, error: BaseException | None
) -> None:
    if answer.cancelled():
        return
    if error is not None:
        answer.set_exception(error)
    else:
        assert result is not None
        answer.set_result(result)
