"""Running the routing actor: inside `hub serve` (embedded) or as `hub worker` processes.

This package, not the web layer, imports `handlers`: actors must be declared after the
broker exists, in the process that will run them. Here what every host of the actor
shares; `embedded.py` the worker process that `hub serve` runs beside the API, and
`processes.py` the processes that `hub worker` supervises."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from hub.container import Container, outbound_clients
from hub.events.routed_kinds import Publisher, kind
from hub.observability.worker_metrics import WorkerMetrics
from hub.rules.state import RuleSet

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


def stop_on_signals(*, reloads_elsewhere: bool = False) -> threading.Event:
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
