"""Statements over many rows at once, for the workers' batches of 200 events.

`one_of`: a list is one parameter whatever its length: on PostgreSQL an array (`= ANY`), on
SQLite a JSON array read back by `json_each`. SQLAlchemy's expanding IN renders a new text
for every call (and psycopg converts, and the server parses and plans it; SQLite prepares it).

`insert_rows`: the per-event records (attempts, incident links), 200 of each a drained
batch, and a batch's new incidents with their timeline lines, owed calls and watermarks.

On PostgreSQL, SQLAlchemy's executemany is psycopg's pipeline: a Bind and an Execute per
row, each executed as its own statement. One multi-row VALUES with native `$n` placeholders
(psycopg prepares a text once it has come round five times; a drained batch is always
200) costs less on both sides. Measured, 200 attempt rows into PostgreSQL 15:
server 33-35 -> 20-27 us of CPU a row, client 22 -> 10. (unnest()ed arrays: server 22-26,
client 19-24; psycopg dumps array elements in Python.) SQLite's executemany is already one
prepared statement stepped in C.

Both together, tests/bench/drain.py's incidents on PostgreSQL with 2 worker processes: the
workers' CPU 241-246 -> 182-192 us an event, 3,029-3,705 -> 4,064-4,974 events/s."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
import psycopg
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Dialect,
    String,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError

# PostgreSQL takes at most 65,535 parameters in one statement.
MAX_PARAMS = 65_535
# SQLAlchemy's text for a datetime in SQLite, which `_sqlite_datetime` writes faster.
DEFAULT_SQLITE_DATETIME = sqlite.DATETIME._storage_format
DATETIME_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # the same, by position


def one_of(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """`column IN (the list bound as `name`)`, for a statement built once per dialect."""
    if dialect == "postgresql":
        # text[], not varchar(n)[]: a cast to the column's length would cut a longer value
        # short (and `provider || ':' || type` takes the length of `provider`).
        element = String() if _is_text(column) else column.type
        return column == any_(bindparam(name, type_=ARRAY(element)))
    listed = func.json_each(bindparam(name, type_=_JsonList()))
    return column.in_(select(literal_column("value")).select_from(listed))


class _JsonList(TypeDecorator[Any]):
    """A list bound as JSON text by orjson: 200 ids in 1.7 us, the JSON type's json.dumps 19."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str:
        return orjson.dumps(list(value)).decode()


def _is_text(column: ColumnElement[Any]) -> bool:
    # sqlmodel's AutoString is a TypeDecorator over String, not a String.
    return isinstance(getattr(column.type, "impl_instance", column.type), String)


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) into `table`, in this connection's
    transaction."""
    if not rows:
        return
    columns = tuple(rows[0])
    # SQLAlchemy's executemany drops a key no column has, silently: a typo is a lost value.
    if unknown := set(columns) - set(table.c.keys()):
        raise ValueError(f"{table.name} has no column {sorted(unknown)}")
    # What SQLAlchemy would do to each value on the way (JSON columns: psycopg's Jsonb;
    # SQLite's datetimes as text).
    processors = [_processor(table, name, conn.dialect) for name in columns]
    if conn.dialect.name != "postgresql":
        _sqlite_rows(conn, table.name, columns, processors, rows)
        return
    per_statement = MAX_PARAMS // len(columns)
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with psycopg.RawCursor(driver) as cur:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for row in chunk:
                for name, process in zip(columns, processors, strict=True):
                    params.append(row[name] if process is None else process(row[name]))
            sql = _values(table.name, columns, len(chunk))
            try:
                cur.execute(sql, params)
            except psycopg.Error as exc:
                # As SQLAlchemy raises it (a unique key: IntegrityError), for the callers that
                # tell a race from a fault by that (handlers/triggers/batch.py runs a batch
                # that lost a race again; a raw UniqueViolation sent it event by event).
                raise DBAPIError.instance(sql, params, exc, psycopg.Error) from exc


def _processor(table: Table, name: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    process = table.c[name].type._cached_bind_processor(dialect)
    impl = table.c[name].type.dialect_impl(dialect)
    if (
        process is not None
        and isinstance(impl, sqlite.DATETIME)
        and impl._storage_format == DEFAULT_SQLITE_DATETIME
    ):
        return _sqlite_datetime(process)
    return process


def _sqlite_datetime(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLite's datetime text as SQLAlchemy writes it (`2026-12-06 01:40:00.000000`, the
    fields as they are, any time zone left out), without its dict of seven fields per value
    (~1.9 -> ~1.1 us; an aware datetime's isoformat takes 2.2). A batch's rows often share
    one datetime (an incident link's `at`): converted once."""
    last_in: Any = None
    last_out: Any = None

    def text(value: Any) -> Any:
        nonlocal last_in, last_out
        if value is last_in:
            return last_out
        if type(value) is datetime:
            v = value
            fields = (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
            out = DATETIME_TEXT % fields
        else:
            out = process(value)  # None, a date, a subclass: as SQLAlchemy does it
        last_in, last_out = value, out
        return out

    return text


def _sqlite_rows(
    conn: Connection,
    table: str,
    columns: tuple[str, ...],
    processors: list[Any],
    rows: Sequence[dict[str, Any]],
) -> None:
    """sqlite3's executemany on the driver's cursor, in the caller's transaction, without
    SQLAlchemy's per-row bookkeeping: 200 attempt rows, 8.0 -> 7.0 us a row (most of what was
    left was the datetimes' conversion to text: `_sqlite_datetime`)."""
    pairs = list(zip(columns, processors, strict=True))
    params = [tuple([row[n] if p is None else p(row[n]) for n, p in pairs]) for row in rows]
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, params)
    except sqlite3.Error as exc:
        # As SQLAlchemy raises it (see the PostgreSQL path).
        raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
    finally:
        cursor.close()


@lru_cache(maxsize=256)
def _values(table: str, columns: tuple[str, ...], count: int) -> str:
    width = len(columns)
    marks = (
        "(" + ", ".join(f"${row * width + i}" for i in range(1, width + 1)) + ")"
        for row in range(count)
    )
    # Names from the table's own metadata (checked above), never from input.
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(marks)}"  # noqa: S608
