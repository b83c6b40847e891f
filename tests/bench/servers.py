"""The benchmarks' processes and databases: the hub and the bare route pinned to their cores,
a fresh SQLite file or PostgreSQL database (and Redis db) per run, and direct reads of it.

Shared by ingest.py and incidents.py. Core 0 is the server's: the bare app, or the hub's API
(with its embedded workers when it runs alone). Core 1 is the load's (wrk), and in
postgres+redis mode the `hub worker` runs there too, off the API's core."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
SECRET = "whsec_bench_" + secrets.token_hex(16)  # Stripe
GITHUB_SECRET = "gh-bench-" + secrets.token_hex(16)
ADMIN_TOKEN = "bench-" + secrets.token_hex(8)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = "hub_bench"  # thrown away and re-created on every run
REDIS_URL = "redis://127.0.0.1:6379/15"  # a db number of its own, flushed on every run
MODES = ("embedded", "postgres+redis")
ALIASES = {"postgres": "postgres+redis", "pg": "postgres+redis"}
ACTIVE = ("received", "queued", "processing")
# Seeded events (--history): settled before the run, left out of its counts.
HISTORY = "hist-"
RUN_ONLY = f"delivery_id NOT LIKE '{HISTORY}%'"
SERVER_CPU = "0"
WORKER_CPU = "1"  # postgres+redis: the `hub worker`, off the API's core (shared with wrk)


class Processes(ExitStack):
    """Children in their own process groups, always stopped: SIGTERM, then SIGKILL."""

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=log.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.callback(stop, proc)
        return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 25), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)  # the group we created: forked workers too
            proc.wait(wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_ready(url: str, procs: list[subprocess.Popen[bytes]], log: Path, hub: bool) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError:
            if not hub:  # any HTTP answer (405 on GET) means the bare app is up
                return
        except OSError:
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{url} never became ready; log {log}:\n{tail}")


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(mode: str, workdir: Path) -> tuple[str, dict[str, str]]:
    """An empty database (and Redis db) for the mode; returns its DB-API target and env."""
    if mode == "embedded":
        db = workdir / "hub.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        return str(db), {"HUB_DATABASE_URL": f"sqlite:///{db}"}
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    url = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
    return url, {
        "HUB_DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://"),
        "HUB_REDIS_URL": REDIS_URL,
    }


def drop_database() -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    redis.Redis.from_url(REDIS_URL).flushdb()


def query(mode: str, db: str, sql: str) -> list[tuple[Any, ...]]:
    if mode == "embedded":
        with closing(sqlite3.connect(db, timeout=30)) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(db) as conn:
        return conn.execute(sql).fetchall()


def by_status(mode: str, db: str) -> dict[str, int]:
    """The run's events by status (not the history seeded before it)."""
    sql = f"SELECT status, count(*) FROM events WHERE {RUN_ONLY} GROUP BY status"
    return {status: int(n) for status, n in query(mode, db, sql)}


def active_by_status(mode: str, db: str) -> dict[str, int]:
    """Events received, queued or processing, through the status index (history is settled):
    polled several times a second, it must not read the whole table."""
    listed = ", ".join(f"'{s}'" for s in ACTIVE)
    sql = f"SELECT status, count(*) FROM events WHERE status IN ({listed}) GROUP BY status"
    return {status: int(n) for status, n in query(mode, db, sql)}


def seed_history(mode: str, db: str, n: int) -> None:
    """`n` settled events from the month before the run, as a deployment's table holds them
    (a fifth processed failed payments, the rest ignored), with ~1 KB bodies; on PostgreSQL
    ANALYZEd, as autovacuum keeps it. Their delivery ids start with HISTORY."""
    if n <= 0:
        return
    body = "{" + '"x": "' + "x" * 900 + '"}'
    if mode == "embedded":
        start = datetime.now(UTC) - timedelta(days=30)
        # SQLAlchemy's SQLite DATETIME text, as the hub writes it (UTC, no offset).
        at = (f"{start + timedelta(milliseconds=i):%Y-%m-%d %H:%M:%S.%f}" for i in range(n))
        rows = (
            (f"evt_00{i:024d}", "stripe", f"{HISTORY}{i}",
             "payment_intent.payment_failed" if i % 5 == 0 else "payment_intent.succeeded",
             "processed" if i % 5 == 0 else "ignored", when, when, 1 if i % 5 == 0 else 0,
             '{"content-type": "application/json"}')
            for i, when in zip(range(n), at, strict=True)
        )  # fmt: skip
        with closing(sqlite3.connect(db, timeout=30)) as conn:
            conn.executemany(
                "INSERT INTO events (id, provider, delivery_id, type, status, received_at,"
                " updated_at, runs, headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute(
                "INSERT INTO event_bodies (event_id, body) SELECT id, CAST(? AS BLOB)"
                " FROM events WHERE delivery_id LIKE ?",
                (body, f"{HISTORY}%"),
            )
            conn.commit()
        return
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (id, provider, delivery_id, type, status, received_at,"
            " updated_at, runs, headers)"
            " SELECT 'evt_00' || lpad(i::text, 24, '0'), 'stripe', %(prefix)s || i,"
            " CASE WHEN i %% 5 = 0 THEN 'payment_intent.payment_failed'"
            " ELSE 'payment_intent.succeeded' END,"
            " CASE WHEN i %% 5 = 0 THEN 'processed' ELSE 'ignored' END,"
            " now() - interval '30 days' + i * interval '1 ms',"
            " now() - interval '30 days' + i * interval '1 ms',"
            ' CASE WHEN i %% 5 = 0 THEN 1 ELSE 0 END, \'{"content-type": "application/json"}\''
            " FROM generate_series(0, %(n)s - 1) AS i",
            {"prefix": HISTORY, "n": n},
        )
        conn.execute(
            "INSERT INTO event_bodies (event_id, body) SELECT id, convert_to(%(body)s, 'UTF8')"
            " FROM events WHERE delivery_id LIKE %(prefix)s",
            {"prefix": f"{HISTORY}%", "body": body},
        )
        conn.execute("ANALYZE")


def active(mode: str, db: str) -> int:
    """Events still received, queued or processing, and Slack/GitHub calls still owed: the
    workers are busy until both are done (and would slow the bare route's next round)."""
    counts = active_by_status(mode, db)
    sql = "SELECT count(*) FROM effects WHERE status IN ('pending', 'attempting')"
    owed = int(query(mode, db, sql)[0][0])
    return sum(counts.get(s, 0) for s in ACTIVE) + owed


def serve_cmd(kind: str, port: int) -> list[str]:
    where = ["--host", "127.0.0.1", "--port", str(port)]
    pin = ["taskset", "-c", SERVER_CPU]
    if kind == "hub":
        return [*pin, str(BIN / "hub"), "serve", *where]
    # The settings `hub serve` passes to uvicorn, so only the app differs.
    flags = ["--factory", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    app = ["tests.bench.bare_app:create_app", "--app-dir", str(ROOT)]
    return [*pin, str(BIN / "uvicorn"), *app, *flags, *where]


def migrate(env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        cmd = [str(BIN / "hub"), "migrate"]
        done = subprocess.run(cmd, check=False, env=env, cwd=log.parent, stdout=out, stderr=out)
    if done.returncode:
        raise RuntimeError(f"hub migrate failed; log {log}:\n{log.read_text()[-3000:]}")


def start_server(kind: str, mode: str, env: dict[str, str], procs: Processes, log: Path) -> int:
    """The bare app or the hub (migrated first; in postgres+redis mode with one `hub worker`
    of 4 threads pinned to WORKER_CPU); returns its port once it answers."""
    port = free_port()
    if kind == "hub":
        migrate(env, log)
    started = [procs.start(serve_cmd(kind, port), env, log)]
    if kind == "hub" and mode == "postgres+redis":
        worker = ["taskset", "-c", WORKER_CPU, str(BIN / "hub"), "worker", "--processes", "1"]
        started.append(procs.start([*worker, "--threads", "4"], env, log))
    path = "/readyz" if kind == "hub" else "/webhooks/stripe"
    wait_ready(f"http://127.0.0.1:{port}{path}", started, log, hub=kind == "hub")
    return port
