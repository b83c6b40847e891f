"""Running the routing actor: inside `hub serve` (embedded) or as `hub worker` processes.

This module, not the web layer, imports `handlers`: actors must be declared after the
broker exists, in the process that will run them."""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware
from sqlalchemy.exc import SQLAlchemyError

from hub.admin.retention import retention_clock
from hub.config import Settings
from hub.container import Container, build, outbound_clients
from hub.events.routed_kinds import Publisher, kind
from hub.events.sweeper import Sweeper, housekeeping_clock
from hub.observability.worker_metrics import LocalCounters, WorkerMetrics
from hub.rules.state import RuleSet
from hub.runtime.db import raise_while_writing
from hub.runtime.dead_consumers import adopt_consumer_id, new_consumer_id, requeue_fetched
from hub.runtime.logs import configure_logging, lean_records
from hub.runtime.periodic import Periodic
from hub.runtime.pipe_broker import PipeBroker, SharedWaiting, read_frames, write_frames
from hub.runtime.priority import below, lower_session

log = logging.getLogger(__name__)

# An idle worker polls the broker this often (ms): the pickup latency at low load.
POLL_MS = 100
# On SIGTERM a worker process lets running messages finish for this long (ms); the
# supervisor waits this plus 5 s for its processes. deploy/k8s gives the pod more than that.
STOP_MS = 30_000
# The same for an embedded hub's worker process, as in-process workers always had.
EMBEDDED_STOP_S = 10


class LowerPriority(Middleware):
    """Lowers the CPU priority of the worker and consumer threads as they start (Linux
    schedules threads as tasks, so this leaves the event loop and commit thread alone)."""

    def __init__(self, nice: int) -> None:
        self.nice = nice

    def after_worker_thread_boot(self, broker: dramatiq.Broker, thread: Any) -> None:
        self._lower()

    def after_consumer_thread_boot(self, broker: dramatiq.Broker, thread: Any) -> None:
        self._lower()

    def _lower(self) -> None:
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):  # not permitted here: run at normal priority
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self.nice)


def start_worker(
    container: Container, threads: int, *, nice_threads: bool = True
) -> dramatiq.Worker:
    from handlers.actors import declare_actors
    from handlers.context import WorkflowContext

    clients = outbound_clients(container.settings)
    container.rules.load_at_start()
    container.rules.start()
    ctx = WorkflowContext(
        settings=container.settings,
        engine=container.engine,
        store=container.store,
        queue=container.events,
        limits=container.limits,
        slack=clients.slack,
        github=clients.github,
        stripe=clients.stripe,
        metrics=WorkerMetrics(container.metrics.counters),
        rules=container.rules,
    )
    container.metrics.counters.start()
    declare_actors(container.broker, ctx)
    if nice_threads and (nice := container.settings.nice()):
        container.broker.add_middleware(LowerPriority(nice))
    # What is built by now lives as long as the process: out of the collector's way, so a
    # full collection does not scan it. One ran inside a write transaction (measured: 119 ms
    # of CPU holding SQLite's write lock, the API's commit waiting behind it).
    gc.collect()
    gc.freeze()
    worker = dramatiq.Worker(container.broker, worker_threads=threads, worker_timeout=POLL_MS)
    worker.start()
    return worker


def publish_routes(container: Container) -> Publisher:
    """Tell the API which kinds this worker's routing table wants (hub/events/routed_kinds.py),
    with those only the routing rules route, again whenever a reload adds some."""
    from handlers.routing_table import ROUTES

    settings = container.settings
    kinds = [kind(provider, type_) for provider, type_ in ROUTES]
    kinds += container.rules.current.kinds()
    publisher = Publisher(container.engine, kinds, settings.routes_refresh_s)

    def republish(new: RuleSet) -> None:
        # Its thread idles once the catch-up is done; reloads are rare.
        Publisher(container.engine, new.kinds(), settings.routes_refresh_s).start()

    container.rules.on_change(republish)
    publisher.start()
    return publisher


class InProcessWorkers:
    """The embedded mode's workers: Dramatiq's own Worker over the in-memory broker."""

    def __init__(self, container: Container, threads: int) -> None:
        self._container = container
        self._threads = threads
        self._worker: dramatiq.Worker | None = None
        self._publisher: Publisher | None = None

    def start(self) -> None:
        self._worker = start_worker(self._container, self._threads)
        self._publisher = publish_routes(self._container)

    def stop(self) -> None:
        if self._worker is not None:
            # Unfinished events stay `processing` in the database and are swept at next start.
            self._worker.stop(timeout=10_000)
            self._container.metrics.counters.stop()
        if self._publisher is not None:
            self._publisher.stop()


class ChildWorkers:
    """The embedded mode's workers as a child process of `hub serve` (the default; see
    hub/runtime/pipe_broker.py for why), at a lower CPU priority, started and stopped with
    it and started again if it dies. The child shares the SQLite file and its write gate,
    takes its messages from the API's PipeBroker, and sends its counters back for /metrics."""

    def __init__(self, container: Container, threads: int) -> None:
        if not isinstance(container.broker, PipeBroker):
            raise TypeError("ChildWorkers needs the PipeBroker (HUB_EMBEDDED_WORKERS=process)")
        self._container = container
        self._broker = container.broker
        self._threads = threads
        self._spawn = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._child: BaseProcess | None = None
        self._publisher: Publisher | None = None
        self._thread = threading.Thread(target=self._supervise, name="hub-workers", daemon=True)

    def start(self) -> None:
        # Published here, before the API loads which kinds are routed, rather than by the
        # child a second or two later: meanwhile every kind would have gone to the queue.
        # The child runs this very routing table.
        self._publisher = publish_routes(self._container)
        self._thread.start()

    def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.stop()
        self._stopping.set()
        self._broker.outbox.put(None)  # the writer's sentinel
        self._thread.join(timeout=10)
        child = self._child
        if child is not None and child.is_alive():
            # Running messages finish; unfinished events stay `queued` or `processing` in the
            # database and are swept at the next start, as they always were.
            child.terminate()
            child.join(timeout=EMBEDDED_STOP_S + 5)
            if child.is_alive():
                log.error("worker process %s still running; killing it", child.pid)
                child.kill()
                child.join(timeout=5)

    def _supervise(self) -> None:
        # Children inherit this thread's mask: a SIGHUP to the process group while one is
        # still starting (before it can ignore it) must not end it. The API's main thread
        # still takes SIGHUP: it is what reloads the rules.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        pending: bytes | None = None
        while not self._stopping.is_set():
            # One-way pipes, (receiving end, sending end): frames to the child, counts back.
            child_frames, frames = self._spawn.Pipe(duplex=False)
            counts, child_counts = self._spawn.Pipe(duplex=False)
            waiting = self._broker.waiting.slots
            args = (self._container.settings, self._threads, child_frames, child_counts, waiting)
            child = self._spawn.Process(target=_embedded_child, args=args, name="hub-worker")
            child.start()
            self._child = child
            # Our copies of the child's ends, closed: a write fails once the child is gone.
            child_frames.close()
            child_counts.close()
            merger = threading.Thread(target=self._merge_counts, args=(counts,), daemon=True)
            merger.start()
            pending = write_frames(self._broker.outbox, frames, first=pending)
            frames.close()
            if pending is None:
                return
            child.join(timeout=5)
            log.error("worker process %s exited with %s; restarting", child.pid, child.exitcode)
            # What it held is lost with it; the sweeper sends those events again.
            self._broker.waiting.reset()

    def _merge_counts(self, conn: Connection) -> None:
        counters = self._container.metrics.counters
        while True:
            try:
                deltas = conn.recv()
            except (EOFError, OSError):
                return
            if isinstance(counters, LocalCounters):
                counters.merge(deltas)


def _embedded_child(
    settings: Settings, threads: int, frames: Connection, counts: Connection, waiting: Any
) -> None:
    """The embedded worker process: its own container and connections, and the API's
    count of unfinished messages (so the API can tell when its workers are idle)."""
    stopping = _stop_on_signals(reloads_elsewhere=True)
    # Before any other thread starts: they all inherit it.
    priority = below(settings.nice(embedded_process=True))
    if configure_logging(settings):
        lean_records()
    parent = os.getppid()
    container = build(settings, waiting=SharedWaiting(waiting, SharedWaiting.CHILD))
    raise_while_writing(container.engine, priority)
    stub = container.broker
    assert isinstance(stub, StubBroker)
    worker = start_worker(container, threads, nice_threads=False)
    reader = threading.Thread(target=read_frames, args=(frames, stub, stopping), daemon=True)
    reader.start()
    counters = container.metrics.counters
    flusher = Periodic("counters", 1.0, lambda: _send_counts(counts, counters),
                       last=lambda: _send_counts(counts, counters))  # fmt: skip
    flusher.start()
    retention = None
    if settings.retention_interval_s > 0:
        retention = retention_clock(container.engine, settings, container.limits)
        retention.start()
    while not stopping.wait(1.0):
        if os.getppid() != parent:  # the API was killed: nobody will stop us
            break
    worker.stop(timeout=EMBEDDED_STOP_S * 1000)
    if retention is not None:
        retention.stop()
    flusher.stop()
    container.engine.dispose()


def _send_counts(conn: Connection, counters: object) -> None:
    if isinstance(counters, LocalCounters) and (deltas := counters.take()):
        with contextlib.suppress(OSError, ValueError):  # the API is gone: nobody to tell
            conn.send(deltas)


def _stop_on_signals(*, reloads_elsewhere: bool = False) -> threading.Event:
    """SIGTERM (Kubernetes, compose, systemd) and SIGINT (a terminal) ask for a graceful stop.

    Installed before anything starts: a signal that came earlier used to kill the process
    outright, and a `hub worker` that is PID 1 in a container ignores a signal it has no
    handler for, so it would have sat out the grace period until SIGKILL."""
    stopping = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if reloads_elsewhere:
        # A worker process follows the reloads its parent records; a SIGHUP to the whole
        # process group (a closed terminal, `kill -HUP -PGID`) must not end it.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return stopping


def _child(threads: int, consumer_id: str) -> None:
    """One worker process: its own container, its own connections. Its consumers fetch from
    Redis as `consumer_id`, and its claims record it, so that the supervisor can give back
    what it held if this process dies."""
    stopping = _stop_on_signals(reloads_elsewhere=True)
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
    stopping = _stop_on_signals()
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
