"""Ingestion benchmark: the hub's webhook endpoints against a bare FastAPI route, on the mix of
events users send, at several shares of events that run a workflow.

Not a test (nothing here is collected by pytest). `make bench-ingest BENCH_ARGS="--shares 20"`.
For each mode and routed share (tests/bench/mix.py: failed payments grouping into three
incidents, CI failures and disputes opening new ones; the rest Stripe events no workflow
wants), the bare route and the hub are served on core 0 while wrk drives them from core 1,
in alternating rounds (bare, hub, bare, hub, ...) so that drift in the machine's speed hits
both alike. Embedded: `hub serve` alone on SQLite (its workers share core 0 with the API).
postgres+redis: `hub serve` on core 0 and one `hub worker` pinned to core 1, off the API's
core. Each round's requests are signed just before it; the bare route and the hub get the
same ones. When the load stops, the backlog (events still received, queued or processing)
is timed to zero, and the hub's database is read directly to check that each acknowledged
event is stored once. Prints one table: a row per mode and share, with the targets; each
row's details end with where the CPU went in its median hub round (cpu_roles.py)."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import cpu_roles
import ingest_table
import mix
import servers
import wrk


def run_share(mode: str, load: mix.Mix, args: argparse.Namespace, top: Path) -> dict[str, Any]:
    """Both servers up at once (the idle one costs nothing) on a fresh database. The ratio is
    the median of the per-round ratios; the row shows that round, and the median p99."""
    workdir = top / f"{mode}-{load.label.replace(' ', '-')}"
    workdir.mkdir()
    data = pool_file(workdir)
    try:
        return _run_share(mode, load, args, workdir, data)
    finally:
        if data.parent != workdir:
            shutil.rmtree(data.parent, ignore_errors=True)


def _run_share(
    mode: str, load: mix.Mix, args: argparse.Namespace, workdir: Path, data: Path
) -> dict[str, Any]:
    script = wrk.write_script(workdir / "events.lua", data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    db, db_env = servers.fresh_database(mode, workdir)
    # The previous row's writes (an embedded run leaves hundreds of MB dirty) go to disk now,
    # not in the kernel's writeback 30 s later, in this row's rounds: PostgreSQL's commit
    # fsyncs waited behind it, p99 45-53 ms in all three rounds of the first postgres row
    # after the embedded ones, where the same row run alone gave 6 ms.
    os.sync()
    keys = {"stripe": servers.SECRET, "github": servers.GITHUB_SECRET}
    env |= db_env | {
        "HUB_STRIPE_WEBHOOK_SECRETS": keys["stripe"],
        "HUB_GITHUB_WEBHOOK_SECRETS": keys["github"],
        "HUB_ADMIN_TOKENS": servers.ADMIN_TOKEN,
    }
    env |= dict(kv.split("=", 1) for kv in args.hub_env)
    run, prepared = mix.run_token(), 0
    # Each with the first event it could send and how many.
    hub_runs: list[tuple[wrk.WrkResult, int, int]] = []

    def sign(seconds: int) -> int:
        # Sized for the fastest server imaginable here, so that no event is sent twice; signed
        # only now because the hub refuses Stripe timestamps older than 300 s.
        nonlocal prepared
        count = math.ceil(float(args.max_rate) * seconds)
        mix.write_events(data, prepared, count, keys, load, run)
        prepared += count
        return count

    def drive(kind: str, seconds: int, count: int = 0) -> wrk.WrkResult:
        url = f"http://127.0.0.1:{ports[kind]}/"

        def send() -> wrk.WrkResult:
            return wrk.run(
                url,
                script,
                duration_s=seconds,
                connections=args.connections,
                server_cpu=servers.SERVER_CPU,
            )

        if kind != "hub":
            return send()
        admin = servers.PG_ADMIN if mode == "postgres+redis" else None
        result, result.cores = cpu_roles.measure(admin, send)
        hub_runs.append((result, prepared - count, count))
        return result

    label = f"[{mode} {load.label} routed]"
    if args.history:
        servers.migrate(env, workdir / "hub.log")
        servers.seed_history(mode, db, args.history)
    with servers.Processes() as procs:
        ports = {kind: servers.start_server(kind, mode, env, procs, workdir / f"{kind}.log")
                 for kind in ("bare", "hub")}  # fmt: skip
        print(
            f"{label} warm-up {args.warmup} s, {args.rounds} rounds of {args.duration} s",
            flush=True,
        )
        count = sign(args.warmup)
        drive("bare", args.warmup)
        drive("hub", args.warmup, count)
        rounds = []
        for _ in range(args.rounds):
            wait_idle(mode, db, args.drain_timeout)  # the hub's backlog must not slow the bare
            count = sign(args.duration)
            bare = drive("bare", args.duration)
            hub = drive("hub", args.duration, count)
            rounds.append((hub.rps / bare.rps, bare, hub))
        result = summarise(mode, load, rounds)
        result["events_prepared"] = prepared
        result["drain"] = drain(mode, db, args.drain_timeout)
        result["stored"] = stored_check(mode, db, load, hub_runs)
        ((result["incidents"],),) = servers.query(mode, db, "SELECT count(*) FROM incidents")
        result["stats_api"] = admin_stats(ports["hub"])
    print(f"{label} {ingest_table.details(result)}", flush=True)
    return result


def pool_file(workdir: Path) -> Path:
    """Where the signed requests go: in memory (tmpfs) where the machine has one. Written to
    disk, ~100 MB before each round, their writeback stalled the hub's SQLite commits for
    ~250 ms once a round (p99 170-190 ms against 23-38 ms with the pool in /dev/shm, same
    code), a cost the bare route, which writes nothing, never paid."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="hub-bench-pool-", dir=shm)) / "events.bin"
    return workdir / "events.bin"


def summarise(
    mode: str, load: mix.Mix, rounds: list[tuple[float, wrk.WrkResult, wrk.WrkResult]]
) -> dict[str, Any]:
    by_run, rounds = rounds, sorted(rounds, key=lambda r: r[0])
    ratio, bare, hub = rounds[len(rounds) // 2]
    # The tail moves more than the throughput between rounds: keep all of them. The tail's
    # figure is the median of the rounds' p99s, not the p99 of the round with the median
    # ratio: that round is chosen for its throughput, and its tail is luck.
    p99s = sorted(round(r[2].p99_ms, 1) for r in rounds)
    # The bare route's own tail on this host, measured the same way: the floor for the hub's.
    bare_p99s = sorted(round(r[1].p99_ms, 1) for r in rounds)
    return {
        "mode": mode,
        "share_pct": load.share_pct,
        "mix": load.label,
        "failed_only": load.failed_only,
        "redelivered_pct": load.redelivered,
        "bare": bare.as_dict(),
        "hub": hub.as_dict(),
        "ratio": ratio,
        "round_ratios": [round(r[0], 3) for r in rounds],
        "round_p99_ms": p99s,
        # Per round, in the order run: (bare, hub) steal on the server's core, in percent.
        "round_steal_pct": [(r[1].server_steal_pct, r[2].server_steal_pct) for r in by_run],
        "p50_ms": hub.p50_ms,
        "p99_ms": p99s[len(p99s) // 2],
        "bare_p99_ms": bare_p99s[len(bare_p99s) // 2],
        # The median round's: where the hub's CPU went while it answered at that ratio.
        "cores": hub.cores,
    }


def wait_idle(mode: str, db: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while servers.active(mode, db) and time.monotonic() < deadline:
        time.sleep(0.2)


def drain(mode: str, db: str, timeout_s: float) -> dict[str, Any]:
    """The backlog left when the load stopped, and how long the workers took to settle it."""
    start = time.monotonic()
    first = last = servers.active_by_status(mode, db)
    while sum(last.get(s, 0) for s in servers.ACTIVE) and time.monotonic() - start < timeout_s:
        time.sleep(0.1)
        last = servers.active_by_status(mode, db)
    elapsed = time.monotonic() - start
    backlog, still = (sum(c.get(s, 0) for s in servers.ACTIVE) for c in (first, last))
    return {
        "backlog_at_load_end": backlog,
        "still_active": still,
        "wait_s": round(elapsed, 1),
        "drain_rate": round((backlog - still) / elapsed, 1) if elapsed > 0.1 else None,
        "by_status": servers.by_status(mode, db),
    }


def stored_check(
    mode: str, db: str, load: mix.Mix, runs: list[tuple[wrk.WrkResult, int, int]]
) -> dict[str, Any]:
    """Every 2xx answer is a row; no delivery id has two rows; no row was invented."""
    sql = f"SELECT count(*), count(DISTINCT delivery_id) FROM events WHERE {servers.RUN_ONLY}"
    ((rows, distinct),) = servers.query(mode, db, sql)
    sent, ok = sum(r.sent for r, _, _ in runs), sum(r.ok for r, _, _ in runs)
    # A run that sends more than it was given cycles: a legitimate duplicate, 2xx, no row;
    # so is every redelivery in the mix.
    repeats = sum(max(0, r.sent - count) for r, _, count in runs)
    repeats += sum(load.redeliveries(start, min(r.sent, count)) for r, start, count in runs)
    # Requests cut off when wrk stopped may be stored without their 2xx being counted.
    passed = ok - repeats <= rows <= sent - repeats and distinct == rows
    return {
        "rows": rows,
        "distinct_delivery_ids": distinct,
        "answered_2xx": ok,
        "sent": sent,
        "repeats": repeats,
        "pass": passed,
    }


def admin_stats(port: int) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/stats",
        headers={"Authorization": f"Bearer {servers.ADMIN_TOKEN}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)
    except (OSError, ValueError) as exc:
        return f"unavailable: {exc}"


def parse_args() -> tuple[argparse.Namespace, list[str], list[mix.Mix]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default=",".join(servers.MODES), help="comma-separated")
    p.add_argument(
        "--shares", default="0,5,20,50", help="routed shares to run, in percent, comma-separated"
    )
    p.add_argument(
        "--failed-every",
        type=int,
        default=0,
        metavar="N",
        help="instead of --shares: every Nth event a payment_intent.payment_failed and no other "
        "routed kind (the mix before --shares)",
    )
    p.add_argument(
        "--redelivered",
        type=int,
        default=0,
        metavar="PCT",
        help="percent of deliveries that are a sender's retry of one sent just before "
        "(answered duplicate)",
    )
    p.add_argument("--duration", type=int, default=5, help="measured seconds per round")
    p.add_argument("--rounds", type=int, default=7, help="alternating bare/hub rounds")
    p.add_argument("--warmup", type=int, default=2, help="seconds, not measured")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="N",
        help="N settled events stored before the run (a deployment's table; PostgreSQL: "
        "ANALYZEd), left out of the run's counts",
    )
    p.add_argument("--max-rate", type=float, default=12_000, help="sizes each round's events")
    p.add_argument(
        "--drain-timeout", type=float, default=120.0, help="seconds to wait for the backlog"
    )
    p.add_argument(
        "--hub-env",
        action="append",
        default=[],
        metavar="HUB_X=VALUE",
        help="extra setting for the hub (repeatable); other HUB_* are not inherited",
    )
    p.add_argument("--json", type=Path, help="also write the results here (one record per run)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, databases)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = p.parse_args()
    modes = [servers.ALIASES.get(m.strip(), m.strip()) for m in args.modes.split(",")]
    if unknown := set(modes) - set(servers.MODES):
        p.error(f"unknown modes {sorted(unknown)}; known: {list(servers.MODES)}")
    if args.failed_every < 0:
        p.error("--failed-every must be positive")
    if args.failed_every:
        return args, modes, [mix.failed_only(args.failed_every)]
    try:
        shares = [int(s) for s in args.shares.split(",")]
    except ValueError:
        p.error(f"--shares takes whole percentages, as in 0,5,20,50; not {args.shares!r}")
    if not all(0 <= s <= 100 for s in shares):
        p.error("--shares are percentages between 0 and 100")
    if not 0 <= args.redelivered <= 90:  # every retry needs an original to repeat
        p.error("--redelivered is a percentage between 0 and 90")
    return args, modes, [mix.users(s, args.redelivered) for s in shares]


def main() -> int:
    args, modes, loads = parse_args()
    # SIGTERM unwinds like Ctrl-C, so the servers started below are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    keep = args.keep
    try:
        results = [run_share(mode, load, args, workdir) for mode in modes for load in loads]
    except BaseException:
        keep = True  # the server logs explain the failure
        raise
    finally:
        if keep:
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            if "postgres+redis" in modes:
                servers.drop_database()
    checks = ingest_table.checks(results)
    print()
    print("\n".join(ingest_table.table(results)))
    print("\ntargets:")
    for c in checks:
        print(f"  {'PASS' if c['pass'] else 'FAIL'}  {c['check']:<52} {c['value']}")
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "checks": checks}, indent=2))
    return 1 if args.strict and not all(c["pass"] for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
