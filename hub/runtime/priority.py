"""A worker process that runs below the API's CPU priority, raised back while it holds a
lock the API may be waiting for.

The embedded worker process runs on the API's core so that workflows take only the API's
idle time. But a worker holding SQLite's write lock at a low priority is a priority
inversion: the API's commit waits for it, and the API's own busy event loop is what keeps
it from running (measured under `make bench` at 20% routed: holds of 10-164 ms for
transactions of a few milliseconds). While it holds the lock, every thread of the process
runs at the priority it started with (all of them: the writer may need the GIL from any).

At the lowest setting (nice 19) the process is put in Linux's idle class (SCHED_IDLE)
instead, where it can be raised back: nice 19 still takes a share of a busy core (a weight
of 15 against the API's 1,024, per runnable thread), the idle class next to none. Measured,
`make bench` embedded at 20% routed: the worker process took 4.9-5.3% of the API's core
during the load at nice 19, 2.4-2.6% in the idle class, and the median round's p99 was
10.7-12.9 ms against 12.4-14.2 ms in four alternating pairs.

Raising a priority again needs CAP_SYS_NICE (root, outside a container's default
capabilities), and so does leaving the idle class: without it the process stays at nice 19,
never in the idle class, which it could not leave while holding the lock."""

from __future__ import annotations

import contextlib
import logging
import os
import threading

log = logging.getLogger(__name__)

LOWEST = 19


class ProcessPriority:
    def __init__(self, high: int, low: int, *, idle: bool = False) -> None:
        self.high = high  # the nice value while holding the lock
        self.low = low  # and the rest of the time
        self.idle = idle  # the rest of the time in the idle class, at nice `high`
        self.enabled = idle or high < low
        # The process's threads, listed again when Python's count of them changes: listing
        # /proc per write was a third of a raise and lower (32 us for 12 threads), and a
        # worker process under load writes hundreds of times a second.
        self._tids: list[int] = []
        self._threads = -1

    def raise_(self) -> None:
        if self.enabled and not self._set(raised=True):
            self.enabled = False
            self._set(raised=False)  # the threads raised before the refusal
            log.info(
                "the worker process cannot raise its CPU priority while it writes (no "
                "CAP_SYS_NICE): it stays low, and may hold the API's writes longer"
            )

    def lower(self) -> None:
        if self.enabled:
            self._set(raised=False)

    def _set(self, *, raised: bool) -> bool:
        """Every thread of this process (Linux sets a priority per thread)."""
        if threading.active_count() != self._threads or not self._tids:
            try:
                self._threads = threading.active_count()
                self._tids = [int(tid) for tid in os.listdir("/proc/self/task")]
            except OSError:
                return False
        for tid in self._tids:
            try:
                if self.idle:
                    policy = os.SCHED_OTHER if raised else os.SCHED_IDLE
                    os.sched_setscheduler(tid, policy, _PARAM)
                else:
                    os.setpriority(os.PRIO_PROCESS, tid, self.high if raised else self.low)
            except ProcessLookupError:
                self._threads = -1  # a thread has ended: list them again next time
                continue
            except OSError:
                return False
        return True


_PARAM = os.sched_param(0)


def below(nice: int) -> ProcessPriority:
    """Lower the calling thread, and so every thread it starts from now on, `nice` steps
    below where it is (a process's first thread, before it starts any other)."""
    started = os.getpriority(os.PRIO_PROCESS, 0)
    if nice <= 0 or started >= LOWEST:
        return ProcessPriority(started, started)
    may_raise = _may_raise(started)
    if may_raise and started + nice >= LOWEST:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass
        else:
            return ProcessPriority(started, started, idle=True)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, started + nice)
    low = os.getpriority(os.PRIO_PROCESS, 0)  # clamped at 19
    return ProcessPriority(started if may_raise else low, low)


def _may_raise(started: int) -> bool:
    """Whether this thread may raise its priority again: one step down, and back."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, started + 1)
        os.setpriority(os.PRIO_PROCESS, 0, started)
    except OSError:
        return False
    return True


AUTOGROUPS = "/proc/sys/kernel/sched_autogroup_enabled"
SESSION_GROUP = "/proc/self/autogroup"


def lower_session(nice: int) -> bool:
    """Lower this process's session as a whole, `nice` steps, where Linux groups sessions.

    With autogroups on (CONFIG_SCHED_AUTOGROUP, enabled in Debian's and Ubuntu's kernels),
    the scheduler first shares a core between sessions and only then between the processes
    of each, so a nice value ranks a process against its own session alone: a `hub worker`
    in a session of its own (a service, a second terminal, `setsid`) at nice 10 or 19 took
    its session's full share next to `hub serve` and the database. The session's group takes
    the same nice (allowed without privilege, as any lowering is). Answers whether it took
    it. In a container it changes nothing: the scheduler ranks the container's cgroup, by the
    pod's CPU request or the service's CPUWeight=."""
    nice = min(nice, LOWEST)
    if nice <= 0:
        return False
    try:
        with open(AUTOGROUPS) as enabled:
            if enabled.read().strip() != "1":
                return False
        with open(SESSION_GROUP, "w") as group:
            group.write(str(nice))
    except OSError:  # no autogroups in this kernel (no such file), or not allowed
        return False
    log.info("this session's CPU priority lowered by %d (Linux autogroup)", nice)
    return True
