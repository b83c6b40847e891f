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
from sqlalchemy import Connection

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
        rows: Sequence[tuple[str, str, str, str, dict[str, str], bytes]],
        status: str,
        now: datetime,
        deadline: datetime,
    ) -> set[str]:
        """Insert (id, provider, delivery_id, type, headers, body) rows; the ids inserted."""
        when: Any = now if self.postgres else _sqlite_time(now)
        due: Any = deadline if self.postgres else _sqlite_time(deadline)
        params: list[Any] = []
        for eid, provider, delivery_id, type_, headers, body in rows:
            params += (eid, provider, delivery_id, type_, status, when, when, due, 0)
            params += (orjson.dumps(headers).decode(), body)
        sql = _statement(len(rows), self.postgres)
        return {row[0] for row in conn.exec_driver_sql(sql, tuple(params))}


def _sqlite_time(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage format (UTC, offset dropped), so both agree.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


@lru_cache(maxsize=256)
def _statement(count: int, postgres: bool) -> str:
    mark = "%s" if postgres else "?"
    headers = f"{mark}::jsonb" if postgres else mark
    one = "(" + ", ".join([mark] * 9 + [headers, mark]) + ")"
    # Only placeholders and fixed names are formatted in; every value is a bound parameter.
    return (
        f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
        + ", ".join([one] * count)
        + " ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id"
    )
