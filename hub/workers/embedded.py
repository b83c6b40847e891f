"""The embedded hub's worker process: started, restarted and stopped by `hub serve`, fed
by the API over a pipe (hub/runtime/pipe_broker.py), on the same SQLite file."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from dramatiq.brokers.stub import StubBroker

from hub.admin.retention import retention_clock
from hub.config import Settings
from hub.container import Container, build
from hub.events.routed_kinds import Publisher
from hub.events.sweeper import Sweeper
from hub.observability.worker_metrics import LocalCounters
from hub.runtime.db import raise_while_writing
from hub.runtime.logs import configure_logging, lean_records
from hub.runtime.periodic import Periodic
from hub.runtime.pipe_broker import PipeBroker, SharedWaiting, read_frames, write_frames
from hub.runtime.priority import below
from hub.workers import EMBEDDED_STOP_S, publish_routes, start_worker, stop_on_signals

log = logging.getLogger(__name__)


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
            self._broker.waiting.reset()
            self._take_back()

    def _take_back(self) -> None:
        """What the dead process held, lost with it, is sent again now: the messages it had
        read from the pipe (their events `queued`, which the sweeper would take back only
        after HUB_REQUEUE_QUEUED_AFTER_S, 300 s) and the events it had claimed (after their
        lease). It was the only worker, so every active event is sent again, as at start;
        one still waiting in the pipe's outbox goes twice, and its second claim is a no-op."""
        try:
            sent = Sweeper(self._container.store, self._container.events, 0).recover()
        except Exception:  # the periodic sweep still brings them back, later
            log.exception("could not send the dead worker process's events again now")
        else:
            log.info("%d active events sent again to the new worker process", sent)

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
    stopping = stop_on_signals(reloads_elsewhere=True)
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
