"""`hub worker`: a supervisor and its worker processes, on Redis and PostgreSQL."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.process import BaseProcess

import redis
from sqlalchemy.exc import SQLAlchemyError

from hub.admin.retention import retention_clock
from hub.config import Settings
from hub.container import Container, build
from hub.events.sweeper import Sweeper, housekeeping_clock
from hub.runtime.dead_consumers import adopt_consumer_id, new_consumer_id, requeue_fetched
from hub.runtime.logs import configure_logging, lean_records
from hub.runtime.priority import lower_session
from hub.workers import STOP_MS, publish_routes, start_worker, stop_on_signals

log = logging.getLogger(__name__)


def _child(threads: int, consumer_id: str) -> None:
    """One worker process: its own container, its own connections. Its consumers fetch from
    Redis as `consumer_id`, and its claims record it, so that the supervisor can give back
    what it held if this process dies."""
    stopping = stop_on_signals(reloads_elsewhere=True)
    settings = Settings()
    if configure_logging(settings):
        lean_records()
    parent = os.getppid()
    container = build(settings)
    adopt_consumer_id(container.broker, consumer_id)
    container.store.claimer = consumer_id
    worker = start_worker(container, threads)
    publisher = publish_routes(container)
    # A supervisor killed with SIGKILL cannot stop us: notice it is gone and stop too.
    while not stopping.wait(1.0):
        if os.getppid() != parent:
            break
    # Running messages finish (up to STOP_MS; one still running then is redelivered by
    # Redis once this worker's heartbeat is stale, and its events are taken back by their
    # lease); fetched but unstarted ones go back to the Redis queue at once.
    worker.stop(timeout=STOP_MS)
    publisher.stop()
    container.metrics.counters.stop()
    container.broker.close()


def run_worker_processes(settings: Settings, processes: int, threads: int) -> None:
    """`hub worker`: supervise N worker processes, restart any that dies, and sweep."""
    if not settings.redis_url:
        raise SystemExit("hub worker needs HUB_REDIS_URL; without it `hub serve` runs the workers")
    stopping = stop_on_signals()
    # Before the children start: they share this session, and so its group's priority.
    lower_session(settings.nice())
    ctx = multiprocessing.get_context("spawn")
    children = [_spawn(ctx, threads) for _ in range(processes)]
    container = build(settings)
    # SIGHUP here reloads the rules for every process (the children follow the database).
    container.rules.load_at_start()
    container.rules.reload_on_sighup()
    sweeper = Sweeper(container.store, container.events, settings.sweep_interval_s)
    sweeper.start()
    clock = housekeeping_clock(container.events, container.limits, settings.sweep_interval_s)
    clock.start()
    retention = None
    if settings.retention_interval_s > 0:
        retention = retention_clock(container.engine, settings, container.limits)
        retention.start()
    log.info("%d worker processes x %d threads on %s", processes, threads, settings.queue_name)
    while not stopping.wait(1.0):
        for i, (child, consumer_id) in enumerate(children):
            if not child.is_alive():
                log.error("worker process %s exited with %s; restarting", child.pid, child.exitcode)
                _give_back(container, consumer_id)
                children[i] = _spawn(ctx, threads)
    log.info("stopping: waiting up to %d s for running messages", STOP_MS // 1000)
    sweeper.stop()
    clock.stop()
    if retention is not None:
        retention.stop()
    # The children are told even when only this process got the signal (a kubelet signals
    # PID 1 alone); each finishes what it runs and gives the rest back to Redis.
    for child, _ in children:
        child.terminate()
    deadline = time.monotonic() + STOP_MS / 1000 + 5
    for child, _ in children:
        child.join(timeout=max(0.1, deadline - time.monotonic()))
        if child.is_alive():
            log.error("worker process %s still running; killing it", child.pid)
            child.kill()
            child.join(timeout=5)


def _give_back(container: Container, consumer_id: str) -> None:
    """What a dead worker process held moves again now: the events it had claimed, whose
    leases would otherwise run for HUB_PROCESSING_LEASE_S, and the messages it had fetched,
    which Redis would return only once its heartbeat was stale (hub/runtime/dead_consumers.py).
    The leases first: the returned messages then find those events claimable."""
    try:
        released = container.store.release_claims(consumer_id)
    except SQLAlchemyError as exc:  # the database down too: the leases still run out
        log.warning("could not release a dead worker's claims now: %s", type(exc).__name__)
    else:
        log.info("%d events the dead worker process had claimed are claimable again", released)
    try:
        requeue_fetched(container.broker, consumer_id)
    except redis.RedisError as exc:  # Redis down too: its heartbeat expiring still covers it
        log.warning("could not give back a dead worker's messages now: %s", type(exc).__name__)
    else:
        log.info("messages the dead worker process had fetched are back on the queue")


def _spawn(ctx: multiprocessing.context.SpawnContext, threads: int) -> tuple[BaseProcess, str]:
    consumer_id = new_consumer_id()
    proc = ctx.Process(target=_child, args=(threads, consumer_id), name="hub-worker")
    # Started with SIGHUP blocked, which it inherits: a SIGHUP to the group while it starts
    # does not end it (it ignores the signal once running); ours arrives once unblocked.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    return proc, consumer_id
