"""The hand-off to workers. Messages carry event ids only, addressed by actor name, so the
API process never imports the workflows (Dramatiq binds actors to a broker at import)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Retries, ShutdownNotifications, TimeLimit

from hub.config import Settings

log = logging.getLogger(__name__)

ROUTE_ACTOR = "route_events"
# One message per batch of ids: one broker round trip for many events, while still small
# enough that several workers share a burst.
MESSAGE_IDS = 50


def build_broker(settings: Settings) -> dramatiq.Broker:
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
        CurrentMessage(),
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
        broker = StubBroker(middleware=middleware)
    broker.declare_queue(settings.queue_name)
    return broker


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

    def ping(self) -> None:
        client = getattr(self.broker, "client", None)
        if client is not None:
            client.ping()


class Enqueuer:
    """A thread that hands newly stored events to the queue, off the event loop.

    Ids that arrive while a send is in flight go out together. If the broker is down the ids
    are dropped here on purpose: the events stay `received` in the database and the sweeper
    sends them again, so nothing depends on this thread's memory."""

    def __init__(self, events: EventQueue, mark_queued: Callable[[Sequence[str]], None]) -> None:
        self._events = events
        self._mark_queued = mark_queued
        self._inbox: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hub-enqueuer", daemon=True)

    def submit(self, ids: list[str]) -> None:
        self._inbox.put(ids)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._inbox.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            ids = list(first)
            stop = False
            while len(ids) < 2000:
                try:
                    more = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                ids.extend(more)
            self._send(ids)
            if stop:
                return

    def _send(self, ids: list[str]) -> None:
        try:
            self._events.send(ids)
            self._mark_queued(ids)
        except Exception as exc:  # the sweeper owns recovery; keep serving
            log.warning(
                "enqueue of %d events deferred to the sweeper: %s", len(ids), type(exc).__name__
            )
