"""One table of what `make bench` measured: ingest, drain and webhook -> Slack, with targets.

Reads the JSON the three benchmarks wrote into one directory; prints, and exits 1 under
`--strict` when a target fails."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import ingest_table


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
        print("\ningest, by share of events that run a workflow (routed):")
        for line in ingest_table.table(ingest["runs"]):
            print(f"  {line}" if line else "")
        checks += [(c["check"], c["value"], c["pass"]) for c in ingest["checks"]]
    if drain:
        print("\ndrain (stored events settled per second):")
        for r in drain["runs"]:
            print(f"  {r['label']:<60} {r['per_second']:>8,.0f}/s")
        checks += [(c["check"], c["value"], c["pass"]) for c in drain["checks"]]
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
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<76} {value}")
    return 1 if args.strict and not all(ok for _, _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
