"""Incident benchmark: webhook -> Slack latency at a steady rate, and Slack calls per burst.

Not a test. `make bench-incidents` (or `BENCH_ARGS=... python tests/bench/incidents.py`).
The hub runs as in production (`hub serve`, plus one `hub worker` in postgres+redis mode)
with its Slack base URL pointed at the local Slack test server (tests/fakes/slack.py, which
answers 429 past one post per second per channel, as Slack does).

1. Steady: `--rate` events/s for `--duration` s. Every `--new-every` seconds one of them
   opens a new incident (a Stripe dispute); the rest are failed payments spread over a few
   accounts, whose incidents are opened (and posted) before the clock starts, so that the
   steady phase is occurrences plus new incidents at half the channel's one post a second.
   Measured: from the hub's 2xx for a dispute to the
   `chat.postMessage` announcing it, and from the 2xx for a failed payment to the first
   Slack call (post or update) showing a count that includes it.
2. Burst: 1,000 failed payments for one new account, as fast as 16 connections send them.
   Measured: Slack calls for that incident (posts, updates) and 429s."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import servers  # noqa: E402  (the same process handling and databases as the ingest bench)

from tests.fakes.slack import SlackServer  # noqa: E402
from tests.handlers import payloads as p  # noqa: E402
from tests.signing import stripe_request  # noqa: E402

COUNT = re.compile(r"\((?:open|acknowledged|resolved), (\d+) occurrences?\)")
ACCOUNTS = 5


def signed(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    event = {**event, "id": f"evt_{uuid.uuid4().hex[:24]}"}
    return stripe_request(event, secret=servers.SECRET)


def send(client: httpx.Client, url: str, request: tuple[bytes, dict[str, str]]) -> float:
    body, headers = request
    r = client.post(url, content=body, headers=headers)
    r.raise_for_status()
    return time.time()


def warm_up(url: str, slack: SlackServer) -> dict[str, int]:
    """Open the accounts' incidents and wait for their messages."""
    with httpx.Client(timeout=10) as client:
        for n in range(ACCOUNTS):
            intent = p.payment_intent_failed(intent_id=f"pi_{uuid.uuid4().hex[:16]}")
            event = p.stripe_event(
                "payment_intent.payment_failed", intent, account=f"acct_steady{n}"
            )
            send(client, url, signed(event))
    deadline = time.monotonic() + 30
    while len(slack.messages("#incidents")) < ACCOUNTS and time.monotonic() < deadline:
        time.sleep(0.2)
    return {f"acct_steady{n}": 1 for n in range(ACCOUNTS)}


def steady(
    url: str, rate: int, duration: int, new_every: int, seen: dict[str, int]
) -> tuple[dict[str, float], list[tuple[str, int, float]]]:
    """Paced sending; returns dispute charge -> 2xx time, and (account, nth, 2xx time)."""
    disputes: dict[str, float] = {}
    payments: list[tuple[str, int, float]] = []
    nth: dict[str, int] = defaultdict(int, seen)
    start = time.monotonic()
    with httpx.Client(timeout=10) as client:
        for i in range(rate * duration):
            due = start + i / rate
            if (pause := due - time.monotonic()) > 0:
                time.sleep(pause)
            if i % (rate * new_every) == 0:
                charge = f"ch_bench_{i // rate:05d}_{uuid.uuid4().hex[:6]}"
                obj = p.dispute(dispute_id=f"dp_{uuid.uuid4().hex[:16]}", charge=charge)
                disputes[charge] = send(
                    client, url, signed(p.stripe_event("charge.dispute.created", obj))
                )
            else:
                account = f"acct_steady{i % ACCOUNTS}"
                nth[account] += 1
                intent = p.payment_intent_failed(intent_id=f"pi_{uuid.uuid4().hex[:16]}")
                event = p.stripe_event("payment_intent.payment_failed", intent, account=account)
                payments.append((account, nth[account], send(client, url, signed(event))))
    return disputes, payments


def writes(slack: SlackServer) -> list[tuple[float, str, dict[str, Any]]]:
    out = []
    for call in list(slack.calls):
        method = call.path.removeprefix("/api/")
        if method in ("chat.postMessage", "chat.update") and call.status == 200:
            out.append((call.time, method, call.params))
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    ms = {"p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": values[-1]}
    return {"n": len(values)} | {k: round(v * 1000, 1) for k, v in ms.items()}


def post_latency(slack: SlackServer, disputes: dict[str, float]) -> list[float]:
    posted = {}
    for at, method, params in writes(slack):
        text = str(params.get("text", ""))
        if method == "chat.postMessage" and (m := re.search(r"ch_bench_\w+", text)):
            posted.setdefault(m.group(0), at)
    return [posted[c] - t for c, t in disputes.items() if c in posted]


def count_latency(slack: SlackServer, payments: list[tuple[str, int, float]]) -> list[float]:
    shown: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for at, _method, params in writes(slack):
        text = str(params.get("text", ""))
        account = re.search(r"acct_steady\d", text)
        count = COUNT.search(text)
        if account and count:
            shown[account.group(0)].append((at, int(count.group(1))))
    out = []
    for account, n, acked in payments:
        first = next((at for at, c in shown[account] if c >= n and at >= acked - 0.001), None)
        if first is not None:
            out.append(first - acked)
    return out


def burst(url: str, slack: SlackServer, count: int) -> dict[str, Any]:
    account = f"acct_burst{uuid.uuid4().hex[:6]}"
    before = len(writes(slack))
    limited = slack.rate_limited
    kind = "payment_intent.payment_failed"
    requests = [
        signed(p.stripe_event(kind, p.payment_intent_failed(intent_id=f"pi_b{i}"), account=account))
        for i in range(count)
    ]
    start = time.monotonic()
    limits = httpx.Limits(max_connections=16)
    with httpx.Client(timeout=10, limits=limits) as client, ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda r: send(client, url, r), requests))
    sent_s = time.monotonic() - start
    deadline = time.monotonic() + 120
    shown = 0
    while time.monotonic() < deadline:
        mine = [w for w in writes(slack)[before:] if account in str(w[2].get("text", ""))]
        counts = [int(m.group(1)) for w in mine if (m := COUNT.search(str(w[2].get("text", ""))))]
        shown = max(counts, default=0)
        if shown >= count:
            break
        time.sleep(0.2)
    mine = [w for w in writes(slack)[before:] if account in str(w[2].get("text", ""))]
    return {
        "events": count,
        "sent_in_s": round(sent_s, 2),
        "current_after_s": round(time.monotonic() - start, 2),
        "count_shown": shown,
        "posts": sum(1 for w in mine if w[1] == "chat.postMessage"),
        "updates": sum(1 for w in mine if w[1] == "chat.update"),
        "slack_429s": slack.rate_limited - limited,
    }


def run_mode(mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    _db, db_env = servers.fresh_database(mode, workdir)
    with SlackServer() as slack, servers.Processes() as procs:
        env |= db_env | {
            "HUB_STRIPE_WEBHOOK_SECRETS": servers.SECRET,
            "HUB_SLACK_BOT_TOKEN": slack.token,
            "HUB_SLACK_API_URL": slack.api_url,
            "HUB_SLACK_INCIDENT_CHANNEL": "#incidents",
        }
        port = servers.start_server("hub", mode, env, procs, workdir / f"{mode}-incidents.log")
        url = f"http://127.0.0.1:{port}/webhooks/stripe"
        print(f"[{mode}] steady {args.rate}/s for {args.duration} s ...", flush=True)
        seen = warm_up(url, slack)
        disputes, payments = steady(url, args.rate, args.duration, args.new_every, seen)
        time.sleep(args.settle)
        result = {
            "new_incident_to_post": percentiles(post_latency(slack, disputes)),
            "occurrence_to_count_shown": percentiles(count_latency(slack, payments)),
            "steady_429s": slack.rate_limited,
            "steady_slack_calls": len(writes(slack)),
        }
        print(f"[{mode}] burst of {args.burst} ...", flush=True)
        result["burst"] = burst(url, slack, args.burst)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="embedded,postgres+redis")
    parser.add_argument("--rate", type=int, default=50, help="events per second, steady phase")
    parser.add_argument("--duration", type=int, default=30, help="seconds of steady load")
    parser.add_argument("--new-every", type=int, default=2, help="seconds between new incidents")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to let Slack catch up")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    modes = [servers.ALIASES.get(m.strip(), m.strip()) for m in args.modes.split(",")]
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"hub-bench-incidents-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    results = {mode: run_mode(mode, args, workdir) for mode in modes}
    if "postgres+redis" in modes:
        servers.drop_database()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    for mode, r in results.items():
        post, count, b = r["new_incident_to_post"], r["occurrence_to_count_shown"], r["burst"]
        print(
            f"{mode:<15} new incident -> Slack post p50 {post.get('p50_ms')} ms, p99 "
            f"{post.get('p99_ms')} ms (n={post['n']}); occurrence -> count shown p50 "
            f"{count.get('p50_ms')} ms, p99 {count.get('p99_ms')} ms; burst of {b['events']}: "
            f"{b['posts']} post(s), {b['updates']} update(s), {b['slack_429s']} 429s, current "
            f"after {b['current_after_s']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
