"""Drain benchmark: how many stored events a second the workers settle, embedded and with 1,
2 and 4 `hub worker` processes.

Not a test. `make bench-drain`. Embedded: `hub serve` on SQLite, pinned to one core, takes
a stored backlog at start-up, timed from the first event settled to the last. PostgreSQL,
for each worker count: a fresh database and Redis db, N events stored as the ingress stores
them (a mix: Stripe events no workflow wants, which the claim marks `ignored`, and GitHub
pings, whose no-op workflow runs and records an attempt), ANALYZEd as autovacuum keeps a
deployment's tables (`--no-analyze`: as stored), the workers started, and once
every one of them polls Redis, the ids handed to the queue as the API does and timed until
every event is settled. (Timed from the first settle instead, a small backlog measured the
processes' start-up: the first one up settled while the others were still importing.) The
machine's cores bound the scaling: on two cores, four processes cannot beat two. Bodies are
the size providers send them (as_sent.py): 2-4 KB Stripe events, 5 KB pings."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import as_sent  # noqa: E402  (tests/bench, the script's directory)

from hub.config import Settings  # noqa: E402
from hub.container import build  # noqa: E402
from hub.events.models import Status  # noqa: E402
from hub.events.store import NewEvent  # noqa: E402
from hub.runtime.migrate import upgrade  # noqa: E402
from tests.handlers import payloads  # noqa: E402

# Targets, events/s: issue #15's for the incidents mix (embedded; PostgreSQL with 2 worker
# processes), issue #5's for the mixes that run no incident workflow (embedded).
INCIDENTS_TARGET = {("embedded", None): 10_000, ("postgres+redis", 2): 5_000}
EMBEDDED_NO_INCIDENTS_TARGET = 1_500
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = "hub_bench_drain"
REDIS_URL = "redis://127.0.0.1:6379/14"  # a db number of its own, flushed on every run
SETTLED = ("processed", "ignored", "failed")
ACTIVE = ("received", "queued", "processing")


def events(n: int, mix: str = "mix", keys: int = 50) -> list[NewEvent]:
    """`mix`: one in five a GitHub ping (its no-op workflow runs and records an attempt),
    the rest Stripe events no workflow wants (marked `ignored` at the claim). `pings`: all
    pings. `incidents`: failed payments over `keys` accounts, each an occurrence of its
    account's incident (grouping, timeline, the message's update owed). `openings`: Stripe
    disputes, each opening an incident of its own and owing its Slack post (an outage's
    burst: timed until the posts are made too)."""
    if mix == "incidents":
        return [failed_payment(i % keys) for i in range(n)]
    if mix == "openings":
        return [new_dispute() for _ in range(n)]
    ping_headers = {"content-type": "application/json", "x-github-event": "ping"}
    repo = as_sent.repository(payloads.repository("bench-org/payments"))
    out = []
    for i in range(n):
        if mix == "pings" or i % 5 == 0:
            ping = {"zen": "Keep it logically awesome.", "hook_id": i, "repository": repo}
            body = json.dumps(ping, separators=(",", ":")).encode()
            out.append(NewEvent("github", str(uuid.uuid4()), "ping", ping_headers, body))
        else:
            out.append(stripe("payment_intent.succeeded", succeeded_intent()))
    return out


def stripe(kind: str, obj: dict[str, Any], account: str | None = None) -> NewEvent:
    """As Stripe sends it: every field of the object, pretty-printed (as_sent.py)."""
    event_id = f"evt_{uuid.uuid4().hex[:24]}"
    event = payloads.stripe_event(kind, obj, account=account, event_id=event_id)
    body = json.dumps(event, indent=2).encode()
    return NewEvent("stripe", event_id, kind, {"content-type": "application/json"}, body)


def succeeded_intent() -> dict[str, Any]:
    intent = payloads.payment_intent_failed(intent_id=f"pi_{uuid.uuid4().hex[:16]}")
    intent |= {"amount_received": intent["amount"], "last_payment_error": None}
    return as_sent.payment_intent(intent | {"status": "succeeded"})


def failed_payment(account: int) -> NewEvent:
    intent = payloads.payment_intent_failed(intent_id=f"pi_{uuid.uuid4().hex[:16]}")
    obj = as_sent.payment_intent(intent)
    return stripe("payment_intent.payment_failed", obj, account=f"acct_drain{account}")


def new_dispute() -> NewEvent:
    obj = as_sent.dispute(payloads.dispute(dispute_id=f"dp_{uuid.uuid4().hex[:24]}"))
    return stripe("charge.dispute.created", obj)


def fresh_postgres() -> Settings:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
    upgrade(url)
    return Settings(_env_file=None, database_url=url, redis_url=REDIS_URL)  # type: ignore[call-arg]


def fresh_sqlite(path: Path) -> Settings:
    url = f"sqlite:///{path}"
    upgrade(url)
    return Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]


def any_event(settings: Settings, statuses: tuple[str, ...]) -> bool:
    """Whether any event is in one of `statuses`: one probe of the status index. (A count of
    the settled ones, polled ten times a second, read the whole backlog's index each time and
    took its CPU from the workers being measured: ~8% of PostgreSQL's on a 2-core host.)"""
    listed = ", ".join(f"'{s}'" for s in statuses)
    sql = f"SELECT EXISTS (SELECT 1 FROM events WHERE status IN ({listed}))"
    return bool(_one(settings, sql))


def any_owed(settings: Settings) -> bool:
    """Whether a Slack or GitHub call is still owed (no Slack configured: made as a log line)."""
    sql = "SELECT EXISTS (SELECT 1 FROM effects WHERE status IN ('pending', 'attempting'))"
    return bool(_one(settings, sql))


def settled(settings: Settings) -> int:
    return int(_one(settings, f"SELECT count(*) FROM events WHERE status IN {SETTLED}"))


def _one(settings: Settings, sql: str) -> Any:
    url = settings.database_url
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as conn:
            row = conn.execute(sql).fetchone()
    else:
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            row = conn.execute(sql).fetchone()
    return row[0] if row else None


def store(settings: Settings, n: int, mix: str, keys: int) -> list[str]:
    """N events stored `queued`, as the ingress stores them."""
    container = build(settings)
    ids = []
    batch = events(n, mix, keys)
    for start in range(0, n, 500):
        chunk = batch[start : start + 500]
        ids += [s.event_id for s in container.store.insert(chunk, Status.QUEUED)]
    container.engine.dispose()
    return ids


def analyze(settings: Settings) -> None:
    """Statistics for the planner, as autovacuum keeps them on a deployment's database (a
    fresh database has none, and the planner guesses differently: a settle that walked the
    status index once `events` was analyzed drained bursts at 210 events/s, not 6,600)."""
    with psycopg.connect(settings.database_url.replace("+psycopg", ""), autocommit=True) as c:
        c.execute("ANALYZE")


def hand_over(settings: Settings, ids: list[str]) -> None:
    """The API's hand-off to the queue (embedded, the start-up recovery does it)."""
    container = build(settings)
    container.events.send(ids)
    container.engine.dispose()


def workers_polling(settings: Settings, processes: int) -> None:
    """Until every worker process polls Redis: each one's broker beats in the heartbeat set
    as it fetches, and so does the supervisor's once it enqueues its housekeeping."""
    client = redis.Redis.from_url(REDIS_URL)
    key = f"{settings.redis_namespace}:__heartbeats__"
    deadline = time.monotonic() + 60
    while client.zcard(key) < processes + 1:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {client.zcard(key)} of {processes + 1} brokers up in 60 s")
        time.sleep(0.05)


def timed(
    settings: Settings,
    cmd: list[str],
    n: int,
    label: str,
    start: Callable[[], None] | None = None,
    owed: bool = False,
    log: Path | None = None,
) -> dict[str, Any]:
    """`start`: run once the command is started, and timed from its end (else from the first
    event settled). `owed`: until the calls the events made owed are made, too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {"HUB_DATABASE_URL": settings.database_url}
    # Passed through: worker tuning, and a rules file (its evaluation's cost on the drain).
    passed = ("HUB_WORKER_THREADS", "HUB_WORKER_NICE", "HUB_RULES_FILE")
    env |= {k: v for k, v in os.environ.items() if k in passed}
    if settings.redis_url:
        env["HUB_REDIS_URL"] = settings.redis_url
    started = time.monotonic()
    # The workers' log lines (a thousand a second in a burst) only with --log: written here
    # they would be this process's work, and read by nobody.
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=out,
                            start_new_session=True)  # fmt: skip
    if out is not subprocess.DEVNULL:
        out.close()  # the child has its own copy
    try:
        first = None
        if start is not None:
            start()
            first = time.monotonic()
        while any_event(settings, ACTIVE) or (owed and any_owed(settings)):
            if first is None and any_event(settings, SETTLED):
                first = time.monotonic()  # the workers are up: count from the first settle
            if time.monotonic() - started > 300:
                raise SystemExit(f"{label}: only {settled(settings)}/{n} settled in 300 s")
            time.sleep(0.1)
        if (done := settled(settings)) != n:
            raise SystemExit(f"{label}: {done} of {n} events settled")
        end = time.monotonic()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    first = first or started
    return {"label": label, "events": n, "seconds": round(end - first, 2),
            "per_second": round(n / (end - first), 1)}  # fmt: skip


def run_postgres(processes: int, n: int, args: argparse.Namespace, mix: str) -> dict[str, Any]:
    settings = fresh_postgres()
    ids = store(settings, n, mix, args.incident_keys)
    if args.analyze:
        analyze(settings)
    threads = args.threads
    cmd = [sys.executable, "-m", "hub.cli", "worker", "--processes", str(processes),
           "--threads", str(threads)]  # fmt: skip
    label = f"PostgreSQL + Redis, {processes} hub worker process(es), {mix}"

    def start() -> None:
        workers_polling(settings, processes)
        hand_over(settings, ids)

    return timed(settings, cmd, n, label, start, owed=mix == "openings", log=args.log)


def run_embedded(
    n: int, workdir: Path, mix: str, keys: int, log: Path | None = None
) -> dict[str, Any]:
    """`hub serve` alone on SQLite, pinned to one core: its embedded workers take the
    stored backlog at start-up (the recovery pass) and drain it with the API idle."""
    settings = fresh_sqlite(workdir / f"drain-{mix}.db")
    store(settings, n, mix, keys)
    port = str(free_port())
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "hub.cli", "serve", "--port", port]
    label = f"embedded, 1 core, {mix}"
    return timed(settings, cmd, n, label, owed=mix == "openings", log=log)


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count(args: argparse.Namespace, mix: str) -> int:
    if mix == "openings":
        return int(args.openings)
    return int(args.incident_events if mix == "incidents" else args.events)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--modes", default="embedded,postgres+redis")
    p.add_argument("--workers", default="1,2,4", help="worker process counts to try (PostgreSQL)")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--mixes", default="mix,pings,incidents", help="which event mixes")
    # Issue #15's drain target is for a burst on a few keys: 20,000 failed payments on 5
    # accounts (3,000 on 50 was over in under a second, shorter than the polling's error).
    p.add_argument("--incident-events", type=int, default=20_000, help="events, incidents mix")
    p.add_argument("--incident-keys", type=int, default=5, help="incidents, incidents mix")
    p.add_argument("--openings", type=int, default=5_000, help="events, openings mix")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--log", type=Path, help="append the hub processes' logs to this file")
    p.add_argument(
        "--analyze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PostgreSQL: ANALYZE the stored backlog first, as autovacuum would have",
    )
    args = p.parse_args()
    modes = {m.strip() for m in args.modes.split(",")}
    mixes = [m.strip() for m in args.mixes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="hub-bench-drain-") as tmp:
        if "embedded" in modes:
            for mix in mixes:
                n = count(args, mix)
                r = run_embedded(n, Path(tmp), mix, args.incident_keys, args.log)
                results.append(r | {"mode": "embedded", "mix": mix})
    if modes & {"postgres+redis", "postgres", "pg"}:
        for mix in mixes:
            for w in args.workers.split(","):
                r = run_postgres(int(w), count(args, mix), args, mix)
                results.append(r | {"mode": "postgres+redis", "processes": int(w), "mix": mix})
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    checks = report(results, args.incident_keys)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "checks": checks}, indent=2))


def report(results: list[dict[str, Any]], keys: int) -> list[dict[str, Any]]:
    print(
        "\nDrain of a stored backlog: embedded from the first event settled to the last, "
        "PostgreSQL from the hand-off to the queue (every worker process polling) to the last "
        "settled. Mixes: "
        "mix = 80% no workflow, 20% a no-op workflow; pings = every event a no-op workflow; "
        f"incidents = failed payments, each an occurrence of one of {keys} incidents; "
        "openings = disputes, each opening an incident, timed until its Slack post is made "
        "(no Slack configured: the owed posts and updates complete as log lines)."
    )
    for r in results:
        print(f"  {r['label']:<60} {r['per_second']:>8,.0f} events/s "
              f"({r['events']:,} in {r['seconds']} s)")  # fmt: skip
    checks = drain_checks(results)
    print("\ntargets:")
    for c in checks:
        print(f"  {'PASS' if c['pass'] else 'FAIL'}  {c['check']:<76} {c['value']}")
    return checks


def drain_checks(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        if r["mix"] == "incidents":
            least = INCIDENTS_TARGET.get((r["mode"], r.get("processes")))
        elif r["mode"] == "embedded" and r["mix"] in ("mix", "pings"):
            least = EMBEDDED_NO_INCIDENTS_TARGET
        else:
            continue
        if least is not None:
            name = f"drain >= {least:,}/s: {r['label']}"
            ok = r["per_second"] >= least
            out.append({"check": name, "value": f"{r['per_second']:,.0f}/s", "pass": ok})
    return out


if __name__ == "__main__":
    main()
