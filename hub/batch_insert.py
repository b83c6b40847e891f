"""The hot path's one statement, written as SQL: a multi-row INSERT of a commit batch.

SQLAlchemy's insertmanyvalues runs each row's values through its type processors (three
datetimes and a JSON column per row); here the batch-wide values (times, deadline, status)
are converted once and the statement text is cached per batch size. Everything else in the
store stays on SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection

# (id, provider, delivery_id, type, headers, body)
Row = tuple[str, str, str, str, dict[str, str], bytes]

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
    "body",
)


class BatchInsert:
    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"

    def __call__(
        self,
        conn: Connection,
        rows: Sequence[Row],
        status: str,
        now: datetime,
        deadline: datetime,
    ) -> set[str]:
        """Insert (id, provider, delivery_id, type, headers, body) rows; the ids inserted."""
        if self.postgres:
            return _insert_postgres(conn, rows, status, now, deadline)
        when, due = _sqlite_time(now), _sqlite_time(deadline)
        flat: list[Any] = []
        for eid, provider, delivery_id, type_, headers, body in rows:
            flat += (eid, provider, delivery_id, type_, status, when, when, due, 0)
            flat += (orjson.dumps(headers).decode(), body)
        # The driver's cursor directly: SQLAlchemy's execution context per statement costs
        # as much as the insert itself at this size (the transaction is still its own).
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            return {row[0] for row in cursor.execute(_sqlite(len(rows)), flat)}
        finally:
            cursor.close()


def _sqlite_time(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage format (UTC, offset dropped), so both agree.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert_postgres(
    conn: Connection,
    rows: Sequence[Row],
    status: str,
    now: datetime,
    deadline: datetime,
) -> set[str]:
    # One multi-row statement with native $n placeholders (RawCursor): one round trip, and
    # psycopg does not re-parse the text, which it would for %s past 50 parameters.
    params: list[Any] = []
    for eid, provider, delivery_id, type_, headers, body in rows:
        params += (eid, provider, delivery_id, type_, status, now, now, deadline)
        params += (orjson.dumps(headers).decode(), body)
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with psycopg.RawCursor(driver) as cur:
        cur.execute(_postgres(len(rows)), params)
        return {row[0] for row in cur.fetchall()}


@lru_cache(maxsize=512)
def _postgres(count: int) -> str:
    values = []
    for row in range(count):
        n = row * 10
        marks = ", ".join(f"${n + i}" for i in range(1, 9))
        values.append(f"({marks}, 0, ${n + 9}::jsonb, ${n + 10})")
    return (
        f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
        + ", ".join(values)
        + " ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id"
    )


@lru_cache(maxsize=512)
def _sqlite(count: int) -> str:
    one = "(" + ", ".join(["?"] * len(COLUMNS)) + ")"
    return (
        f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
        + ", ".join([one] * count)
        + " ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id"
    )
