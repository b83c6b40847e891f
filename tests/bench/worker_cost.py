"""What the workers spend on each routed event of the ingest benchmark's mix, in one thread.

Not a test. `.venv/bin/python tests/bench/worker_cost.py [--modes sqlite,postgres]`. Stores
the routed part of the ingest mix (mix.py: of every 20, 16 failed payments on three
accounts, 2 CI failures each on a repository of its own, 2 disputes; bodies at the size
providers send them, as_sent.py), then calls the router (`route_events`) on batches of
them and delivers each delivery message it leaves (`deliver_effects`), as a worker thread
would, with no broker, no other thread and INFO logs off.

Prints, per routed event: the process's CPU routing and delivering, the wall time (the
database's share is the difference), and on PostgreSQL the statements and commits sent
(counted at psycopg's cursor, so the multi-row INSERTs the hub sends on the driver's cursor
count too). The counts are exact whatever the host is doing, so a change to the workers can
be judged by them on a host whose speed moves by half within minutes (docs/benchmarks.md,
2026-12-06); the CPU figures need alternating runs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import as_sent  # noqa: E402
import psycopg  # noqa: E402
import servers  # noqa: E402

from handlers.context import WorkflowContext  # noqa: E402
from handlers.dispatch import route_events  # noqa: E402
from handlers.outbox.deliver import deliver_effects  # noqa: E402
from handlers.routing_table import ROUTES  # noqa: E402
from hub.events.store import NewEvent  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.handlers import payloads as p  # noqa: E402
from tests.handlers.conftest import context_for, deliver_messages  # noqa: E402

ACCOUNTS = ("acct_1BenchAtlas000001", "acct_1BenchBoreal00002", "acct_1BenchCirrus00003")


def routed_mix(n: int) -> list[NewEvent]:
    """The ingest mix's routed events, in its order (mix.USERS_CYCLE)."""
    events = []
    for i in range(n):
        k = i % 20
        if k in (7, 17):
            run = p.workflow_run("failure", "main", run_number=i, run_id=i, repo=f"octo/r{i}")
            body, kind, provider = as_sent.workflow_run(run), "workflow_run.completed", "github"
        elif k in (3, 13):
            obj = as_sent.dispute(p.dispute(dispute_id=f"dp_{i}", status="needs_response"))
            body = p.stripe_event("charge.dispute.created", obj, event_id=f"evt_dp_{i}")
            kind, provider = body["type"], "stripe"
        else:
            obj = as_sent.payment_intent(p.payment_intent_failed(intent_id=f"pi_{i}"))
            body = p.stripe_event("payment_intent.payment_failed", obj,
                                  account=ACCOUNTS[i % 3], event_id=f"evt_pf_{i}")  # fmt: skip
            kind, provider = body["type"], "stripe"
        raw = json.dumps(body, indent=2).encode()
        headers = {"content-type": "application/json"}
        events.append(NewEvent(provider, uuid.uuid4().hex, kind, headers, raw))
    return events


def measure(ctx: WorkflowContext, ids: list[str], batch: int) -> dict[str, float]:
    counts = {"statements": 0, "commits": 0}
    with counting(counts):
        routing = delivering = 0.0
        start = time.perf_counter()
        for first in range(0, len(ids), batch):
            a = time.process_time()
            route_events(ctx, ids[first : first + batch], ROUTES)
            b = time.process_time()
            for target in deliver_messages(ctx):
                deliver_effects(ctx, target)
            routing, delivering = routing + b - a, delivering + time.process_time() - b
        wall = time.perf_counter() - start
    n = len(ids)
    return {
        "route_cpu_us": 1e6 * routing / n,
        "deliver_cpu_us": 1e6 * delivering / n,
        "wall_us": 1e6 * wall / n,
        "statements": counts["statements"] / n,
        "commits": counts["commits"] / n,
    }


@contextmanager
def counting(counts: dict[str, int]) -> Iterator[None]:
    """Counts what reaches PostgreSQL through psycopg: SQLAlchemy's statements and those the
    hub sends on the driver's cursor (rows.py's multi-row INSERTs), and the commits."""
    originals = (psycopg.Cursor.execute, psycopg.Cursor.executemany, psycopg.Connection.commit)

    def counted(name: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return method(*args, **kwargs)

        return call

    psycopg.Cursor.execute = counted("statements", originals[0])  # type: ignore[method-assign]
    psycopg.Cursor.executemany = counted("statements", originals[1])  # type: ignore[method-assign]
    psycopg.Connection.commit = counted("commits", originals[2])  # type: ignore[method-assign]
    try:
        yield
    finally:
        psycopg.Cursor.execute, psycopg.Cursor.executemany, psycopg.Connection.commit = originals


def run(mode: str, events: int, batch: int, workdir: Path) -> dict[str, float]:
    if mode == "sqlite":
        url = f"sqlite:///{workdir / 'hub.db'}"
    else:
        _, env = servers.fresh_database("postgres+redis", workdir)
        url = env["HUB_DATABASE_URL"]
    servers.migrate({"HUB_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}, workdir / "hub.log")
    ctx = context_for(make_settings(url))
    ids = [stored.event_id for stored in ctx.store.insert(routed_mix(events))]
    if mode == "postgres":
        with ctx.engine.connect() as conn:  # as autovacuum would have, by now
            conn.exec_driver_sql("ANALYZE")
    try:
        return measure(ctx, ids, batch)
    finally:
        ctx.engine.dispose()
        if mode == "postgres":
            servers.drop_database()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=100, help="events a routing message")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # a worker's INFO lines cost it; this measures the rest
    print(f"{args.events:,} routed events of the ingest mix, {args.batch} a routing message;"
          " per event:")  # fmt: skip
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix="hub-worker-cost-") as tmp:
            r = run(mode, args.events, args.batch, Path(tmp))
        sent = f"; {r['statements']:.3f} statements, {r['commits']:.3f} commits"
        print(
            f"  {mode:<9} CPU {r['route_cpu_us']:5.0f} us routing + {r['deliver_cpu_us']:4.0f}"
            f" us delivering, wall {r['wall_us']:5.0f} us" + (sent if mode == "postgres" else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
