"""One table of what `make bench` measured: ingest, drain and webhook -> Slack, with targets.

Reads the JSON the three benchmarks wrote into one directory; prints, and exits 1 under
`--strict` when a target fails."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EMBEDDED_DRAIN_TARGET = 1_500  # events/s, issue #5


def load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("directory", type=Path)
    p.add_argument("--strict", action="store_true")
    args = p.parse_args()
    ingest = load(args.directory / "ingest.json")
    drain = load(args.directory / "drain.json")
    incidents = load(args.directory / "incidents.json")
    checks: list[tuple[str, str, bool]] = []
    print("\n=== make bench: summary ===")
    if ingest:
        print("\ningest (32 connections, hub and bare FastAPI in the same run; median round):")
        for mode, r in ingest["modes"].items():
            hub = r["hub"]
            print(
                f"  {mode:<15} {hub['rps']:>7,.0f} req/s  {r['ratio']:.2f}x bare  "
                f"p50 {hub['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms "
                f"(per round {r['round_p99_ms']})"
            )
        checks += [(c["check"], c["value"], c["pass"]) for c in ingest["checks"]]
    if drain:
        print("\ndrain (stored events settled per second):")
        for r in drain:
            print(f"  {r['label']:<52} {r['per_second']:>8,.0f}/s")
            if r["mode"] == "embedded" and r["label"].endswith(("mix", "pings")):
                name = f"drain >= {EMBEDDED_DRAIN_TARGET:,}/s: {r['label']}"
                value = f"{r['per_second']:,.0f}/s"
                checks.append((name, value, r["per_second"] >= EMBEDDED_DRAIN_TARGET))
    if incidents:
        print("\nwebhook -> Slack (fake Slack server with real rate limits):")
        for mode, r in incidents.items():
            post, count, burst = (
                r["new_incident_to_post"],
                r["occurrence_to_count_shown"],
                r["burst"],
            )
            print(
                f"  {mode:<15} new incident -> post p50 {post.get('p50_ms')} ms, "
                f"p99 {post.get('p99_ms')} ms (n={post['n']}); occurrence -> count shown "
                f"p50 {count.get('p50_ms')} ms, p99 {count.get('p99_ms')} ms"
            )
            print(
                f"  {'':<15} burst of {burst['events']:,}: {burst['posts']} post(s), "
                f"{burst['updates']} update(s), {burst['slack_429s']} Slack 429s"
            )
            checks.append(
                (f"{mode} burst: one Slack post", str(burst["posts"]), burst["posts"] == 1)
            )
    print("\ntargets:")
    for name, value, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<62} {value}")
    return 1 if args.strict and not all(ok for _, _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
