"""Drain benchmark: how many stored events a second 1, 2 and 4 `hub worker` processes settle.

Not a test. `make bench-drain`. For each worker count: a fresh PostgreSQL database and Redis
db, N events stored as the ingress stores them (a mix: Stripe events no workflow wants, which
the claim marks `ignored`, and GitHub pings, whose no-op workflow runs and records an
attempt), their ids handed to the queue as the API does, then the workers started and timed
until every event is settled. The machine's cores bound the scaling: on two cores, four
processes cannot beat two."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.config import Settings  # noqa: E402
from hub.container import build  # noqa: E402
from hub.migrate import upgrade  # noqa: E402
from hub.models import Status  # noqa: E402
from hub.store import NewEvent  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = "hub_bench_drain"
REDIS_URL = "redis://127.0.0.1:6379/14"  # a db number of its own, flushed on every run


def events(n: int) -> list[NewEvent]:
    out = []
    for i in range(n):
        if i % 5 == 0:
            body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": i}).encode()
            headers = {"content-type": "application/json", "x-github-event": "ping"}
            out.append(NewEvent("github", str(uuid.uuid4()), "ping", headers, body))
        else:
            eid = f"evt_{uuid.uuid4().hex[:24]}"
            body = json.dumps({"id": eid, "object": "event", "type": "payment_intent.succeeded"})
            headers = {"content-type": "application/json"}
            out.append(NewEvent("stripe", eid, "payment_intent.succeeded", headers, body.encode()))
    return out


def fresh() -> Settings:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
    upgrade(url)
    return Settings(_env_file=None, database_url=url, redis_url=REDIS_URL)  # type: ignore[call-arg]


def settled(settings: Settings) -> int:
    with psycopg.connect(settings.database_url.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM events WHERE status IN ('processed', 'ignored', 'failed')"
        ).fetchone()
    return int(row[0]) if row else 0


def run(processes: int, n: int, threads: int) -> dict[str, float]:
    settings = fresh()
    container = build(settings)
    stored = []
    batch = events(n)
    for start in range(0, n, 500):
        chunk = batch[start : start + 500]
        stored += [s.event_id for s in container.store.insert(chunk, Status.QUEUED)]
    container.events.send(stored)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {"HUB_DATABASE_URL": settings.database_url, "HUB_REDIS_URL": REDIS_URL}
    cmd = [sys.executable, "-m", "hub.cli", "worker", "--processes", str(processes),
           "--threads", str(threads)]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        first = None
        while (done := settled(settings)) < n:
            if first is None and done:
                first = time.monotonic()  # the workers are up: count from the first settle
            if time.monotonic() - started > 300:
                raise SystemExit(f"{processes} workers: only {done}/{n} settled in 300 s")
            time.sleep(0.1)
        end = time.monotonic()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    container.engine.dispose()
    first = first or started
    return {"processes": processes, "events": n, "seconds": round(end - first, 2),
            "per_second": round(n / (end - first), 1)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--workers", default="1,2,4", help="worker process counts to try")
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args()
    results = [run(int(w), args.events, args.threads) for w in args.workers.split(",")]
    print(
        f"\nDrain, PostgreSQL + Redis, {args.events:,} stored events (80% no workflow, "
        "20% a no-op workflow); from the first event settled to the last:"
    )
    for r in results:
        print(f"  {r['processes']} worker process(es): {r['per_second']:>8,.0f} events/s "
              f"({r['seconds']} s)")  # fmt: skip
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
