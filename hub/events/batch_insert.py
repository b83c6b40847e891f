"""The hot path's statements, written as SQL: multi-row INSERTs of a commit batch, events and
their bodies (event_bodies: a row apart, so that the event's changes of status never copy it).

SQLAlchemy's insertmanyvalues runs each row's values through its type processors (three
datetimes and a JSON column per row); here the batch-wide values (times, deadline, status)
are converted once and the statement text is cached per batch size. Everything else in the
store stays on SQLAlchemy Core. On PostgreSQL the same statement serves the workers' sync
connections and the ingress's async ones."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection

from hub.events.ids import new_event_ids
from hub.events.models import Status

# (id, provider, delivery_id, type, status, deadline, headers, body)
Row = tuple[str, str, str, str, str, datetime | None, dict[str, str], bytes]

COLUMNS = (
    "id",
    "provider",
    "delivery_id",
    "type",
    "status",
    "received_at",
    "updated_at",
    "deadline",
    "runs",
    "headers",
)

PG_EXISTING = (
    "SELECT provider, delivery_id, id FROM events WHERE (provider, delivery_id) IN "
    "(SELECT * FROM unnest($1::text[], $2::text[]))"
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    provider: str
    delivery_id: str
    type: str
    headers: dict[str, str]
    body: bytes
    # False: no worker routes this kind, so it is stored `ignored` and never enqueued.
    routed: bool = True


@dataclass(frozen=True, slots=True)
class Stored:
    event_id: str
    duplicate: bool


@dataclass(slots=True)
class InsertPlan:
    batch: Sequence[NewEvent]
    status: str
    now: datetime
    deadline: datetime
    rows: list[Row]
    first: dict[tuple[str, str], str]

    @classmethod
    def of(
        cls, batch: Sequence[NewEvent], status: str, now: datetime, deadline: datetime
    ) -> InsertPlan:
        # Ids carry received_at's millisecond, so time filters can be id ranges (queries.py).
        ids = new_event_ids(len(batch), int(now.timestamp() * 1000))
        first: dict[tuple[str, str], str] = {}
        rows = []
        for ev, eid in zip(batch, ids, strict=True):
            key = (ev.provider, ev.delivery_id)
            if key in first:
                continue  # a repeat inside the same batch (Slack retries race the original)
            first[key] = eid
            state, due = (status, deadline) if ev.routed else (Status.IGNORED, None)
            row = (eid, ev.provider, ev.delivery_id, ev.type, state, due, ev.headers, ev.body)
            rows.append(row)
        return cls(batch, status, now, deadline, rows, first)

    def missing(self, inserted: Collection[str]) -> list[tuple[str, str]]:
        """Keys whose row already existed: their ids must be looked up."""
        return [k for k, eid in self.first.items() if eid not in inserted]

    def answers(
        self, inserted: Collection[str], existing: dict[tuple[str, str], str]
    ) -> list[Stored]:
        seen: set[tuple[str, str]] = set()
        out = []
        for ev in self.batch:
            key = (ev.provider, ev.delivery_id)
            eid = self.first[key]
            if eid in inserted and key not in seen:
                out.append(Stored(eid, duplicate=False))
            else:
                out.append(Stored(existing.get(key, eid), duplicate=True))
            seen.add(key)
        return out

    def pg_insert(self) -> tuple[str, list[Any]]:
        """The PostgreSQL statement and its parameters: one multi-row INSERT, one round trip."""
        params: list[Any] = []
        now = self.now
        # The deadline as text, so a NULL one (an ignored event) and a set one are the same
        # parameter type: psycopg prepares a statement per (text, parameter types), and with
        # routed and ignored events mixed each batch had its own pattern of types, so the
        # statement was parsed and planned at every batch (`$8::timestamptz` reads the text).
        due = self.deadline.isoformat()
        # In key order: two APIs given the same deliveries (a retry racing its original) in
        # different orders each waited on the other's unique-index entry, a deadlock that
        # PostgreSQL broke by failing one batch (503s, seen once in CI's scale-out test).
        for eid, provider, delivery_id, type_, status, deadline, headers, body in sorted(
            self.rows, key=_by_key
        ):
            params += (eid, provider, delivery_id, type_, status, now, now)
            params.append(None if deadline is None else due)
            params += (orjson.dumps(headers).decode(), body)
        return _postgres(len(self.rows)), params


def _by_key(row: Row) -> tuple[str, str]:
    return row[1], row[2]


def pg_existing_params(keys: Sequence[tuple[str, str]]) -> list[Any]:
    return [[p for p, _ in keys], [d for _, d in keys]]


class BatchInsert:
    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"

    def __call__(self, conn: Connection, plan: InsertPlan) -> set[str]:
        """Insert the plan's rows; the ids inserted."""
        if self.postgres:
            driver = conn.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            with psycopg.RawCursor(driver) as cur:
                cur.execute(*plan.pg_insert())
                return {row[0] for row in cur.fetchall()}
        # The driver's cursor directly: SQLAlchemy's execution context per statement costs
        # as much as the insert itself at this size (the transaction is still its own).
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            return sqlite_insert(cursor, plan)
        finally:
            cursor.close()

    def existing(
        self, conn: Connection, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """The stored ids of deliveries that were already there (redeliveries)."""
        if not keys:
            return {}
        driver: Any = conn.connection.driver_connection
        if self.postgres:
            with psycopg.RawCursor(driver) as cur:
                cur.execute(PG_EXISTING, pg_existing_params(keys))
                return {(p, d): i for p, d, i in cur.fetchall()}
        cursor = driver.cursor()
        try:
            return sqlite_existing(cursor, keys)
        finally:
            cursor.close()


def sqlite_insert(cursor: Any, plan: InsertPlan) -> set[str]:
    """The plan's rows on a sqlite3 cursor, in the caller's transaction; the ids inserted."""
    when, due = _sqlite_time(plan.now), _sqlite_time(plan.deadline)
    flat: list[Any] = []
    for eid, provider, delivery_id, type_, status, deadline, headers, _body in plan.rows:
        flat += (eid, provider, delivery_id, type_, status, when, when)
        flat += (due if deadline is not None else None, 0)
        flat.append(orjson.dumps(headers).decode())
    # No RETURNING: the driver lets go of the GIL for every row a statement returns, and
    # each time takes it back from a busy event loop while this transaction holds SQLite's
    # one writer. The count tells whether every row went in.
    cursor.execute(_sqlite(len(plan.rows)), flat)
    ours = [row[0] for row in plan.rows]
    if cursor.rowcount == len(ours):
        stored = set(ours)
    else:
        # Some deliveries were there already (retries): which of our ids were stored.
        found = cursor.execute(_sqlite_stored(len(ours)), ours)
        stored = {row[0] for row in found}
    bodies = [v for row in plan.rows if row[0] in stored for v in (row[0], row[7])]
    if bodies:
        cursor.execute(_sqlite_bodies(len(bodies) // 2), bodies)
    return stored


SQLITE_EXISTING = (
    "SELECT delivery_id, id FROM events WHERE provider = ? "
    "AND delivery_id IN (SELECT value FROM json_each(?))"
)


def sqlite_existing(cursor: Any, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The stored ids of deliveries that were already there (redeliveries). One provider at
    a time: SQLite (3.40) plans `(provider, delivery_id) IN (VALUES ...)` as a scan of the
    whole table, so every redelivery read every stored event."""
    found: dict[tuple[str, str], str] = {}
    for provider in sorted({p for p, _ in keys}):
        deliveries = orjson.dumps([d for p, d in keys if p == provider]).decode()
        rows = cursor.execute(SQLITE_EXISTING, (provider, deliveries))
        found |= {(provider, d): i for d, i in rows}
    return found


def _sqlite_time(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage format (UTC, offset dropped), so both agree;
    # isoformat: 1.8 us against strftime("%Y-%m-%d %H:%M:%S.%f")'s 2.4, twice a batch.
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


@lru_cache(maxsize=512)
def _postgres(count: int) -> str:
    # Native $n placeholders (RawCursor): psycopg sends the text as is, where %s past 50
    # parameters would be re-parsed per call. Measured against a single statement over
    # unnest()ed arrays: psycopg dumps array parameters in Python, 49 µs a row against 11.
    # Events and their bodies in one statement: the bodies of the rows the INSERT stored (not
    # of a retry's, which stored nothing). The VALUES list names its types: nothing else
    # tells PostgreSQL what a NULL deadline is.
    values = []
    for row in range(count):
        n = row * 10
        marks = ", ".join(f"${n + i}::{t}" for i, t in enumerate(_PG_TYPES, start=1))
        values.append(f"({marks})")
    new = ", ".join((*COLUMNS[:8], "headers", "body"))
    return (
        f"WITH new ({new}) AS (VALUES {', '.join(values)}), "
        f"stored AS (INSERT INTO events ({', '.join(COLUMNS)}) "
        f"SELECT {', '.join(COLUMNS[:8])}, 0, headers FROM new "
        "ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id) "
        "INSERT INTO event_bodies (event_id, body) "
        "SELECT new.id, new.body FROM new JOIN stored ON stored.id = new.id RETURNING event_id"
    )


# id, provider, delivery_id, type, status, received_at, updated_at, deadline, headers, body
_PG_TYPES = ("text", "text", "text", "text", "text", "timestamptz", "timestamptz",
             "timestamptz", "jsonb", "bytea")  # fmt: skip


@lru_cache(maxsize=512)
def _sqlite_bodies(count: int) -> str:
    return "INSERT INTO event_bodies (event_id, body) VALUES " + ", ".join(["(?, ?)"] * count)


@lru_cache(maxsize=512)
def _sqlite(count: int) -> str:
    one = "(" + ", ".join(["?"] * len(COLUMNS)) + ")"
    return (
        f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
        + ", ".join([one] * count)
        + " ON CONFLICT (provider, delivery_id) DO NOTHING"
    )


@lru_cache(maxsize=512)
def _sqlite_stored(count: int) -> str:
    return f"SELECT id FROM events WHERE id IN ({', '.join(['?'] * count)})"
