"""The embedded hub's hand-off to its worker process: a Dramatiq broker whose messages go down
a pipe to the child that `hub serve` starts (hub.workers.embedded.ChildWorkers), which puts them on
its own in-memory broker and runs them there.

Why a process: workers that are threads of the API process hold its GIL while they run a
workflow, and the event loop waits; measured (issue #15), a fifth of the traffic running
workflows halved the rate senders were answered at and tripled p99. Why a pipe and not
Redis: the embedded mode stays one command and one SQLite file. Nothing relies on the pipe
keeping a message: events stay `queued` in the database until a worker settles them, and
the sweeper sends again what a dead child took with it."""

from __future__ import annotations

import queue
import struct
import threading
from multiprocessing.connection import Connection
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name

from hub.runtime.queue import Waiting

# A frame is the delay (ms; -1 for none) and the message as Dramatiq encodes it.
_DELAY = struct.Struct("!q")


class SharedWaiting(Waiting):
    """Waiting across the two processes: the API counts what it sends, the worker process
    what it finishes, so the API's Enqueuer sees the child's backlog.

    Each process keeps its own net count in its own slot of a shared array (API 0, child 1)
    under a thread lock of its own, and the backlog is their sum. No slot has two writing
    processes, so no lock between processes, and so no named semaphore: a process killed by
    a signal (plain `uvicorn` ends by raising SIGTERM again) left one behind, and
    multiprocessing's tracker warned of it at every stop."""

    API, CHILD = 0, 1

    def __init__(self, slots: Any, mine: int) -> None:
        super().__init__()
        self.slots = slots
        self.mine = mine

    @property
    def count(self) -> int:
        # Each slot is one aligned 8-byte word: read whole whatever the other process does.
        # A reset after a worker process died may leave what it held to finish below zero.
        return max(0, int(sum(self.slots)))

    def _add(self, n: int) -> None:
        with self._lock:
            self.slots[self.mine] += n

    def reset(self) -> None:
        """Forget every count; only while no worker process runs (the other slot's writer)."""
        with self._lock:
            for slot in range(len(self.slots)):
                self.slots[slot] = 0


class PipeBroker(dramatiq.Broker):
    """The API side. `enqueue` never waits for the child (a request handler may call it): the
    frame goes on an outbox that `ChildWorkers` writes to the current child's pipe."""

    def __init__(self, waiting: SharedWaiting) -> None:
        self._queues: set[str] = set()  # before the base class asks for them
        self.waiting = waiting
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        super().__init__(middleware=[waiting])

    def declare_queue(self, queue_name: str) -> None:
        self._queues.add(queue_name)

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        self.emit_before("enqueue", message, delay)
        self.outbox.put(_DELAY.pack(-1 if delay is None else delay) + message.encode())
        self.emit_after("enqueue", message, delay)
        return message

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        raise NotImplementedError("the embedded workers consume in their own process")

    def get_declared_queues(self) -> set[str]:
        return set(self._queues)

    def get_declared_delay_queues(self) -> set[str]:
        return {dq_name(q) for q in self._queues}

    def flush(self, queue_name: str) -> None:
        pass

    def flush_all(self) -> None:
        pass

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        raise NotImplementedError("the embedded workers run in their own process")


def write_frames(
    outbox: queue.SimpleQueue[bytes | None], conn: Connection, first: bytes | None = None
) -> bytes | None:
    """Copy frames from the outbox to `conn` (`first` before them) until the stop sentinel
    (returns None) or the pipe breaks (returns the frame not written, for the next child)."""
    while True:
        frame = first if first is not None else outbox.get()
        first = None
        if frame is None:
            return None
        try:
            conn.send_bytes(frame)
        except (OSError, ValueError):
            return frame


def read_frames(conn: Connection, broker: StubBroker, stopping: threading.Event) -> None:
    """The worker process's side: each frame onto the in-memory broker its workers consume.
    Messages without a delay go straight onto the queue: the API counted them as sent."""
    while not stopping.is_set():
        try:
            frame = conn.recv_bytes()
        except (EOFError, OSError):  # the API process is gone
            stopping.set()
            return
        (delay,) = _DELAY.unpack_from(frame)
        data = frame[_DELAY.size :]
        message = dramatiq.Message.decode(data)
        if delay < 0:
            broker.queues[message.queue_name].put(data)
        else:
            broker.enqueue(message, delay=delay)
