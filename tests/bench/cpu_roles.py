"""Where a hub round's CPU goes, by role: the API process, the workers, each one's PostgreSQL
backends, Redis and wrk, in cores (CPU seconds a second of the round).

The ratio to the bare route says how fast the hub answers; this says what it spent doing so,
and on a host of two cores that is most of why a row is where it is (docs/benchmarks.md,
2026-12-06). Read from /proc at the start and the end of the round, so it needs no profiler
and costs nothing while the round runs. A PostgreSQL backend is counted with the process that
owns its client socket (pg_stat_activity's client port, `ss`'s owner of that port)."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg

ROLES = ("api", "api db", "workers", "workers db", "redis", "wrk")
_TICKS = os.sysconf("SC_CLK_TCK")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds so far)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _client_owners() -> dict[int, int]:
    """Local port of each connection to PostgreSQL -> the pid that owns it."""
    try:
        out = subprocess.run(
            ["ss", "-tnpH", "dst", "127.0.0.1:5432"],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    owners = {}
    for line in out.splitlines():
        parts, owner = line.split(), re.search(r"pid=(\d+)", line)
        if len(parts) >= 4 and owner:
            owners[int(parts[3].rsplit(":", 1)[1])] = int(owner.group(1))
    return owners


def _backends(admin_dsn: str) -> dict[int, int]:
    """PostgreSQL backend pid -> its client's port."""
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid, client_port FROM pg_stat_activity WHERE client_port > 0"
            ).fetchall()
    except psycopg.Error:
        return {}
    return {pid: port for pid, port in rows}


def _processes() -> dict[int, str]:
    """The hub's processes and Redis, by pid."""
    found: dict[int, str] = {}
    parents: dict[int, int] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        pid = int(name)
        stat = _stat(pid)
        if stat is None:
            continue
        parents[pid] = stat[0]
        role = _role(_cmdline(pid))
        if role is not None:
            found[pid] = role
    # The embedded worker process is the API's child; `hub worker`'s children are workers.
    for pid, parent in parents.items():
        if pid not in found and found.get(parent) in ("api", "workers"):
            found[pid] = "workers"
    return found


def _role(cmd: str) -> str | None:
    if "/hub serve" in cmd:
        return "api"
    if "/hub worker" in cmd:
        return "workers"
    return "redis" if cmd.startswith("redis-server") else None


def roles(admin_dsn: str | None) -> dict[int, str]:
    """Each pid of interest and its role; with `admin_dsn`, PostgreSQL's backends too."""
    found = _processes()
    if admin_dsn:
        owners = _client_owners()
        for backend, port in _backends(admin_dsn).items():
            role = found.get(owners.get(port, -1))
            if role in ("api", "workers"):
                found[backend] = f"{role} db"
    return found


def measure(admin_dsn: str | None, run: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """`run()`'s result and the cores each role used while it ran. wrk is the child that
    `run()` starts and waits for: its CPU is what this process's children gained."""
    before = roles(admin_dsn)
    start_cpu = {pid: s[1] for pid in before if (s := _stat(pid)) is not None}
    start_children = _children_cpu()
    start = time.perf_counter()
    result = run()
    wall = time.perf_counter() - start
    # Backends and processes that started during the run count from zero.
    after = roles(admin_dsn)
    used = dict.fromkeys(ROLES, 0.0)
    for pid, role in {**before, **after}.items():
        stat = _stat(pid)
        if stat is not None and role in used:
            used[role] += stat[1] - start_cpu.get(pid, 0.0)
    used["wrk"] = _children_cpu() - start_children
    return result, {role: round(cpu / wall, 3) for role, cpu in used.items()}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
