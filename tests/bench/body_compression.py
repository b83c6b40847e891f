"""What storing a webhook body costs PostgreSQL, by size and by the column's compression.

Not a test. `.venv/bin/python tests/bench/body_compression.py [--repeat 2]` against the
local server (PG_ADMIN in servers.py). For each of the ingest benchmark's kinds of event
(mix.py, at the size providers send them), inserts 16,000 rows into a scratch table shaped
like `events` (its columns, unique key and status index), 16 to a multi-row INSERT as the
ingress sends them, and prints the backend's CPU per event (from /proc, so run it on the
machine that runs PostgreSQL), the wall time, and the table's size per event; with the
column's default (pglz), with lz4 (migration 0009), and with nothing compressed
(toast_tuple_target raised so the rows stay whole in their pages)."""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

import mix
import psycopg
import servers

SETTINGS = {
    "pglz": "",
    "lz4": "ALTER TABLE body_probe ALTER COLUMN body SET COMPRESSION lz4",
    "none": "ALTER TABLE body_probe SET (toast_tuple_target = 8160)",
}
BATCH = 16
COLUMNS = 14


def backend_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bodies(kind: mix.Kind, n: int) -> list[bytes]:
    now = int(time.time())
    out = []
    for i in range(n):
        f = f"probe{i:010d}"
        fields = {
            "id": f"evt_1B{f}", "acct": f"acct_1B{f}", "pi": f"pi_3B{f}", "ch": f"ch_3B{f}",
            "order": f"ord-{f}", "req": f"req_{f}", "dp": f"dp_1B{f}", "name": f"svc-{i}",
            "sha": f"{i:040x}", "runno": i, "runid": 10**10 + i, "ts": now, "due": now,
            "started": "2024-06-10T06:10:02Z", "delivery": f"d-{i}",
        }  # fmt: skip
        out.append(kind.template.format(**fields).encode())
    return out


def run(conn: psycopg.Connection, setting: str, label: str, data: list[bytes]) -> None:
    conn.execute("DROP TABLE IF EXISTS body_probe")
    conn.execute(
        "CREATE TABLE body_probe (id varchar(40) PRIMARY KEY, provider varchar(32),"
        " delivery_id varchar(200), type varchar(200), status varchar(16),"
        " received_at timestamptz, updated_at timestamptz, deadline timestamptz, runs int,"
        " replay_id varchar(40), redacted_at timestamptz, last_error text, headers jsonb,"
        " body bytea, UNIQUE (provider, delivery_id))"
    )
    conn.execute("CREATE INDEX ON body_probe (status, id)")
    if SETTINGS[setting]:
        conn.execute(SETTINGS[setting])
    (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (0,)
    row = "(" + ",".join(["%s"] * COLUMNS) + ")"
    sql = f"INSERT INTO body_probe VALUES {','.join([row] * BATCH)} ON CONFLICT DO NOTHING"
    headers = '{"content-type": "application/json; charset=utf-8", "user-agent": "Stripe/1.0"}'
    now = datetime.now(UTC)
    n = len(data) - len(data) % BATCH
    cpu0, t0 = backend_cpu_s(pid), time.perf_counter()
    with conn.cursor() as cur:
        for start in range(0, n, BATCH):
            params: list[object] = []
            for i in range(start, start + BATCH):
                params += [f"evt_{i:020d}", "stripe", f"d{i}", label, "ignored", now, now,
                           None, 0, None, None, None, headers, data[i]]  # fmt: skip
            cur.execute(sql, params, prepare=True)
    cpu, wall = backend_cpu_s(pid) - cpu0, time.perf_counter() - t0
    (size,) = conn.execute("SELECT pg_total_relation_size('body_probe')").fetchone() or (0,)
    print(
        f"{label:8} {sum(map(len, data[:n])) // n:6,} B  {setting:5}  backend"
        f" {1e6 * cpu / n:5.1f} us/event  wall {1e6 * wall / n:5.1f} us/event"
        f"  stored {size / n:6,.0f} B/event",
        flush=True,
    )
    conn.execute("DROP TABLE body_probe")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--events", type=int, default=16_000)
    args = p.parse_args()
    kinds = mix.kinds()
    data = {name: bodies(kinds[name][0], args.events) for name in ("unrouted", "failed", "ci")}
    with psycopg.connect(servers.PG_ADMIN, autocommit=True) as conn:
        for _ in range(args.repeat):
            for name, rows in data.items():
                for setting in SETTINGS:
                    run(conn, setting, name, rows)


if __name__ == "__main__":
    main()
