"""A worker process that runs below the API's CPU priority, raised back while it holds a
lock the API may be waiting for.

The embedded worker process runs at nice 19 on the API's core so that workflows take only
the API's idle time. But a worker holding SQLite's write lock at nice 19 is a priority
inversion: the API's commit waits for it, and the API's own busy event loop is what keeps
it from running (measured under `make bench` at 20% routed: holds of 10-164 ms for
transactions of a few milliseconds). While it holds the lock, every thread of the process
runs at the priority it started with (all of them: the writer may need the GIL from any).

Raising a priority again needs CAP_SYS_NICE (root, outside a container's default
capabilities): without it the first attempt fails, and the process stays low."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class ProcessPriority:
    def __init__(self, high: int, low: int) -> None:
        self.high = high  # the nice value while holding the lock
        self.low = low  # and the rest of the time
        self.enabled = high < low

    def raise_(self) -> None:
        if self.enabled and not self._set(self.high):
            self.enabled = False
            self._set(self.low)  # the threads raised before the refusal
            log.info(
                "the worker process cannot raise its CPU priority while it writes (no "
                "CAP_SYS_NICE): it stays at nice %d, and may hold the API's writes longer",
                self.low,
            )

    def lower(self) -> None:
        if self.enabled:
            self._set(self.low)

    @staticmethod
    def _set(nice: int) -> bool:
        """Every thread of this process (Linux sets a nice value per thread)."""
        try:
            tids = os.listdir("/proc/self/task")
        except OSError:
            return False
        for tid in tids:
            try:
                os.setpriority(os.PRIO_PROCESS, int(tid), nice)
            except ProcessLookupError:
                continue  # the thread has just ended
            except OSError:
                return False
        return True
