"""What a dead worker process had fetched from Redis goes back to the queue at once.

Dramatiq's Redis broker keeps each consumer's fetched, unacknowledged messages in a set of
its own and returns them to the queue only once that consumer's heartbeat is older than
`broker_heartbeat_timeout_ms`, in a maintenance pass that runs on a random fraction of
calls: 15 s and some luck with our defaults (CI once waited 23.5 s for two events with a
5 s heartbeat). The events a dead worker had only fetched (it prefetches up to twice its
threads' messages, 200 events each) are under no lease, so nothing else brings them back
sooner. `hub worker` knows the moment one of its processes dies, and which consumer id it
ran under: it marks that consumer dead and runs the pass itself."""

from __future__ import annotations

import uuid

import dramatiq
from dramatiq.brokers.redis import RedisBroker

# Dramatiq's scale for `maintenance_chance`: this many out of a million calls run a pass.
EVERY_CALL = 1_000_000


def new_consumer_id() -> str:
    return str(uuid.uuid4())


def adopt_consumer_id(broker: dramatiq.Broker, consumer_id: str) -> None:
    """Run this process's consumers under `consumer_id` (before any of them starts)."""
    if isinstance(broker, RedisBroker):
        broker.broker_id = consumer_id


def requeue_fetched(broker: dramatiq.Broker, consumer_id: str) -> None:
    """Return to their queues the messages that the consumer `consumer_id`, whose process
    has exited, had fetched and not acknowledged. Only for a process known to be gone: a
    live consumer's messages would be delivered twice (harmless, each event is claimed
    once, but wasted work)."""
    if not isinstance(broker, RedisBroker):
        return
    # A heartbeat at 0 is older than any timeout; the pass then treats the consumer as dead.
    broker.client.zadd(f"{broker.namespace}:__heartbeats__", {consumer_id: 0})
    # A broker of our own that runs the pass at every call, through Dramatiq's own script;
    # the pass works one queue at a time, so each queue and its delay queue gets a call.
    sweeper = RedisBroker(  # type: ignore[no-untyped-call]
        client=broker.client,
        namespace=broker.namespace,
        middleware=[],
        heartbeat_timeout=broker.heartbeat_timeout,
        maintenance_chance=EVERY_CALL,
    )
    for queue in sorted(broker.get_declared_queues() | broker.get_declared_delay_queues()):
        sweeper.do_qsize(queue)
