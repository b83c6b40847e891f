"""The hand-off to workers. Messages carry event ids only, addressed by actor name, so the
API process never imports the workflows (Dramatiq binds actors to a broker at import)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from hub.config import Settings

log = logging.getLogger(__name__)

# Actor names: the whole contract between the processes that send and those that run.
ROUTE_ACTOR = "route_events"
DELIVER_ACTOR = "deliver_effects"
HOUSEKEEPING_ACTOR = "keep_house"
# One message per batch of ids: one broker round trip, one claim and one apply transaction
# for many events, while still small enough that several workers share a burst. Measured
# (tests/bench/drain.py, failed payments on 5 keys, embedded): 9,800 incident events/s at
# 100, 11,500/s at 200.
MESSAGE_IDS = 200
MAX_BATCH = 2000
MAX_HOLD_S = 0.02
# Workers on PostgreSQL: a batch's size costs the ingress nothing (no single writer to wait
# on), and each batch's fixed cost comes off the cores the ingress shares with the workers.
# Measured at 20% routed (postgres+redis bench): batches of ~25 -> ~87, worker CPU 0.54 ->
# 0.36 of a core. Embedded, a longer batch holds SQLite's writer longer: the ingress waits.
SHARED_DATABASE_HOLD_S = 0.1
BUSY_IDS = 8
# Paced only above this many ids a hold (200 a second at 0.1 s): below, batches stay small
# whatever the hold, and a hold would only delay each incident (at 50 events a second,
# new incident -> Slack post p50 39 -> 175 ms when every send waited).
PACED_IDS = 20


class Waiting(Middleware):
    """Counts messages sent and not yet finished, for a broker whose workers share this
    process (a Redis queue's length would hide what workers have prefetched)."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def _add(self, n: int) -> None:
        with self._lock:
            self._count += n

    def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        if delay is None:
            self._add(1)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if "eta" not in message.options:  # delayed messages were never counted
            self._add(-1)

    after_skip_message = after_process_message


def build_broker(settings: Settings, waiting: Waiting | None = None) -> dramatiq.Broker:
    """Redis when configured; else the in-memory broker of an embedded hub, or, in the API
    process of one whose workers are a child process, the pipe to that child.
    `waiting`: the embedded workers' count of unfinished messages (shared with the API
    process when they run in a child)."""
    if not settings.redis_url and settings.embedded_workers == "process":
        from hub.runtime.pipe_broker import PipeBroker, SharedWaiting

        if not isinstance(waiting, SharedWaiting):  # the API process: the child shares it
            pipe = PipeBroker(SharedWaiting(shared_counts(), SharedWaiting.API))
            pipe.declare_queue(settings.queue_name)
            return pipe
    middleware = [
        # Whole-message retries cover infrastructure faults (database down); per-event
        # retries with backoff are the router's own, recorded on the event.
        Retries(
            max_retries=settings.worker_max_retries,
            min_backoff=settings.worker_min_backoff_ms,
            max_backoff=settings.worker_max_backoff_ms,
        ),
        TimeLimit(time_limit=15 * 60 * 1000),
        ShutdownNotifications(),
    ]
    broker: dramatiq.Broker
    if settings.redis_url:
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=10
        )
        broker = RedisBroker(  # type: ignore[no-untyped-call]
            client=client,
            namespace=settings.redis_namespace,
            middleware=middleware,
            heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
            maintenance_chance=settings.broker_maintenance_per_million,
        )
    else:
        broker = StubBroker(middleware=[*middleware, waiting or Waiting()])
    broker.declare_queue(settings.queue_name)
    return broker


def shared_counts() -> Any:
    """Two integers in shared memory, one for the API process and one for its embedded
    worker process (pipe_broker.SharedWaiting). Raw: no lock, so no named semaphore."""
    import multiprocessing

    return multiprocessing.get_context("spawn").RawArray("q", 2)


class EventQueue:
    """Sends event ids to the routing actor, by name."""

    def __init__(self, broker: dramatiq.Broker, queue_name: str) -> None:
        self.broker = broker
        self.queue_name = queue_name

    def send(self, ids: Sequence[str], delay_ms: int | None = None) -> None:
        for start in range(0, len(ids), MESSAGE_IDS):
            chunk = list(ids[start : start + MESSAGE_IDS])
            message: dramatiq.Message[None] = dramatiq.Message(
                queue_name=self.queue_name,
                actor_name=ROUTE_ACTOR,
                args=(chunk,),
                kwargs={},
                options={},
            )
            self.broker.enqueue(message, delay=delay_ms)

    def send_actor(
        self, actor_name: str, args: tuple[Any, ...], delay_ms: int | None = None
    ) -> None:
        """Any other actor, by name: the sender needs no import of the workflows."""
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=self.queue_name, actor_name=actor_name, args=args, kwargs={}, options={}
        )
        self.broker.enqueue(message, delay=delay_ms)

    def backlog(self) -> int:
        """Messages sent that workers have not finished (best effort)."""
        for middleware in self.broker.middleware:
            if isinstance(middleware, Waiting):
                return middleware.count
        if not isinstance(self.broker, RedisBroker):
            return 0
        try:
            # Workers in other processes: what they have not even fetched yet.
            key = f"{self.broker.namespace}:{self.queue_name}"
            return int(self.broker.client.llen(key))
        except redis.RedisError:  # a broker in trouble: send at once, let that fail or not
            return 0

    def ping(self) -> None:
        client = getattr(self.broker, "client", None)
        if client is not None:
            client.ping()


class Enqueuer:
    """A thread that hands newly stored events to the queue, off the event loop.

    Batching adapts to load: when ids arrive many at a time, or workers are still on earlier
    messages, new ids wait (up to a hold) and go out together, because one claim of 100
    events costs little more than one claim of 5. A quiet hub sends each id at once. Paced
    (workers on Redis), ids coming fast go out one message a hold.

    If the broker is down, `on_failure` marks the events for the sweeper, which sends them
    again within seconds; if this process dies first, their `queued` deadline brings them
    back. Nothing relies on this thread's memory."""

    def __init__(
        self,
        events: EventQueue,
        on_failure: Callable[[Sequence[str]], None],
        hold_s: float = MAX_HOLD_S,
        *,
        paced: bool = False,
    ) -> None:
        self._events = events
        self._on_failure = on_failure
        self._hold_s = hold_s
        # Paced: while ids keep coming, one message a hold. For a Redis queue, whose length
        # does not show what the workers have prefetched: it reads empty under load.
        self._paced = paced
        self._last_sent = -hold_s
        self._sent: deque[tuple[float, int]] = deque()  # paced: (when, how many) a hold back
        # Submissions wait here without waking the thread: a wake per commit batch (hundreds
        # a second) handed the GIL back and forth with the event loop on the API's one core
        # (the loop switched out 1.4-1.8 times a submit in a microbenchmark, 0.2 now). The
        # thread is woken only when it sleeps with nothing to send, when a message's worth
        # is waiting, or to stop; a hold ends on its timer.
        self._inbox: deque[list[str]] = deque()
        self._given = 0  # ids submitted (written by the one submitter, the event loop)
        self._handled = 0  # ids sent or handed to on_failure (written by this thread only)
        self._asleep = False
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="hub-enqueuer", daemon=True)

    def submit(self, ids: list[str]) -> None:
        self._inbox.append(ids)
        self._given += len(ids)
        if self._asleep or self._given - self._handled >= MESSAGE_IDS:
            self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Sends what was submitted before, then ends the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            ids: list[str] = []
            self._take(ids)
            if not ids:
                if self._stopping:
                    return
                self._sleep()
                continue
            now = time.monotonic()
            until = now + self._hold_s
            if self._coming_fast(now):
                until = self._last_sent + self._hold_s
            self._hold(ids, until)
            self._send(ids)
            self._handled += len(ids)
            self._last_sent = time.monotonic()
            if self._paced:
                self._sent.append((self._last_sent, len(ids)))

    def _sleep(self) -> None:
        """Until a submission or stop. Announced first, then the inbox looked at again: a
        submitter that appended before the announcement is seen here, one after it sees it."""
        self._asleep = True
        if not self._inbox and not self._stopping:
            self._wake.wait()
        self._asleep = False
        self._wake.clear()

    def _coming_fast(self, now: float) -> bool:
        """Paced, and ids coming fast: at least PACED_IDS sent within the last hold."""
        if not self._paced:
            return False
        while self._sent and now - self._sent[0][0] >= self._hold_s:
            self._sent.popleft()
        return sum(n for _, n in self._sent) >= PACED_IDS

    def _hold(self, ids: list[str], until: float) -> None:
        # Sleeps on the event rather than polling the inbox: a thread that wakes every few ms
        # takes the GIL from the event loop each time, and that wait shows in the answer times.
        while len(ids) < MESSAGE_IDS and not self._stopping:
            busy = len(ids) >= BUSY_IDS or self._coming_fast(time.monotonic())
            if not busy and self._events.backlog() == 0:
                return
            left = until - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(left)
            self._wake.clear()
            self._take(ids)

    def _take(self, ids: list[str]) -> None:
        """Everything submitted so far, up to MAX_BATCH ids."""
        inbox = self._inbox
        while inbox and len(ids) < MAX_BATCH:
            ids.extend(inbox.popleft())

    def _send(self, ids: list[str]) -> None:
        try:
            self._events.send(ids)
        except Exception as exc:  # the sweeper owns recovery; keep serving
            log.warning(
                "enqueue of %d events deferred to the sweeper: %s", len(ids), type(exc).__name__
            )
            try:
                self._on_failure(ids)
            except Exception as again:  # the database too: the queued deadline remains
                log.warning("could not mark them for the sweeper: %s", type(again).__name__)
