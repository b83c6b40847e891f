"""A background job that runs every few seconds on its own thread (sweeper, checkpoints)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(
        self,
        name: str,
        interval_s: float,
        tick: Callable[[], object],
        *,
        first: Callable[[], object] | None = None,
        last: Callable[[], object] | None = None,
    ) -> None:
        self._name = name
        self._interval = interval_s
        self._tick = tick
        self._first = first
        self._last = last
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"hub-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._last is not None:
            self._guarded(self._last)

    def _run(self) -> None:
        if self._first is not None:
            self._guarded(self._first)
        while not self._stop.wait(self._interval):
            self._guarded(self._tick)

    def _guarded(self, job: Callable[[], object]) -> None:
        try:
            job()
        except Exception as exc:  # database or broker down: the next round tries again
            log.warning("%s failed: %s: %s", self._name, type(exc).__name__, exc)
