"""Search in stored payloads, for the event list of the console and `GET /admin/events`.

Text is matched in the raw body as stored (bytes, case-sensitive), in SQL. JSON containment
(`{"data": {"object": {"customer": "cus_123"}}}`, PostgreSQL's `@>` meaning) is decided in
Python on the decoded payload: a body may be form-encoded (GitHub's `payload=`, Slack's
interactions and commands), where a database JSON cast would fail the whole query. SQL first
keeps only bodies holding each plain word of the pattern, so Python reads few rows; a scan
stops after `budget` rows and says where it stopped, so one search never reads the table."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Engine, LargeBinary, func, literal, select

# One copy of the listing's columns and row conversion (the admin list's own).
from hub.events.queries import (
    _SUMMARY,
    EventFilter,
    EventRow,
    _event,
    clamp_limit,
    decode_cursor,
    encode_cursor,
)
from hub.events.store import event_bodies, events, with_bodies
from integrations.base import Malformed
from integrations.payloads import decode

# Words that read the same in a JSON body and in a form-encoded one.
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]{3,}")
BATCH = 100
BUDGET = 2000
# Payloads nest a handful of levels; a deeper pattern only costs recursion.
MAX_DEPTH = 32


class SearchError(ValueError):
    """A search that cannot run; the message says why."""


@dataclass(frozen=True, slots=True)
class PayloadSearch:
    text: str | None = None
    # A JSON object or array the decoded payload must contain.
    contains: Any = field(default=None)

    def __bool__(self) -> bool:
        return bool(self.text) or self.contains is not None


@dataclass(frozen=True, slots=True)
class SearchPage:
    items: list[EventRow]
    next_cursor: str | None
    # Rows read; when the budget ran out first, `next_cursor` continues below the last one.
    scanned: int
    budget_spent: bool


def parse_contains(text: str) -> Any:
    """The `contains` pattern from its JSON text; SearchError when it is not an object/array."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SearchError(f"contains is not valid JSON ({exc.msg} at {exc.pos})") from None
    except RecursionError:
        raise SearchError(f"contains nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(value, dict | list):
        raise SearchError('contains must be a JSON object or array, e.g. {"type": "x"}')
    if _depth(value) > MAX_DEPTH:
        raise SearchError(f"contains nests deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def search_events(
    engine: Engine,
    filters: EventFilter,
    search: PayloadSearch,
    cursor: str | None,
    *,
    limit: int,
    budget: int = BUDGET,
) -> SearchPage:
    """Newest first, as `EventQueries.list_events`. Raises BadCursor like it."""
    limit = clamp_limit(limit)
    below = decode_cursor(cursor) if cursor is not None else None
    stmt = (
        select(*_SUMMARY, events.c.headers, event_bodies.c.body)
        .select_from(with_bodies)
        .where(*filters.clauses(), *_prefilter(engine, search))
    )
    found: list[EventRow] = []
    scanned = 0
    while len(found) <= limit and scanned < budget:
        batch_stmt = stmt if below is None else stmt.where(events.c.id < below)
        rows = _read(engine, batch_stmt.order_by(events.c.id.desc()).limit(BATCH))
        if not rows:
            return SearchPage(found[:limit], _next(found, limit), scanned, False)
        for row in rows:
            scanned += 1
            below = row["id"]
            if _matches(row, search):
                found.append(_event(row))
            if len(found) > limit or scanned >= budget:
                break
    if len(found) > limit:
        return SearchPage(found[:limit], _next(found, limit), scanned, False)
    # The budget ran out: the next page starts below the last row read.
    return SearchPage(found, encode_cursor(below) if below else None, scanned, True)


def _next(found: list[EventRow], limit: int) -> str | None:
    return encode_cursor(found[limit - 1].id) if len(found) > limit else None


def _read(engine: Engine, stmt: Any) -> list[Any]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def _prefilter(engine: Engine, search: PayloadSearch) -> list[ColumnElement[bool]]:
    words = [search.text] if search.text else []
    if search.contains is not None:
        words += [w for w in _leaves(search.contains) if _PLAIN.fullmatch(w)]
    return [_has_bytes(engine, w.encode("utf-8")) for w in words]


def _has_bytes(engine: Engine, needle: bytes) -> ColumnElement[bool]:
    if engine.dialect.name == "postgresql":
        # LIKE works on bytea, byte for byte; `\` is its default escape.
        escaped = needle.replace(b"\\", b"\\\\").replace(b"%", b"\\%").replace(b"_", b"\\_")
        pattern = literal(b"%" + escaped + b"%", LargeBinary)
        # op(): SQLAlchemy's like() is for strings only; PostgreSQL has bytea LIKE bytea.
        return event_bodies.c.body.op("LIKE", is_comparison=True)(pattern)
    # SQLite's instr() compares blobs byte for byte (LIKE would fold ASCII case).
    return func.instr(event_bodies.c.body, literal(needle, LargeBinary)) > 0


def _leaves(value: Any) -> Iterator[str]:
    """The strings of a pattern, keys included: what a matching body must hold as text."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _leaves(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _leaves(inner)
    elif isinstance(value, str):
        yield value


def _matches(row: dict[str, Any], search: PayloadSearch) -> bool:
    if search.contains is None:
        return True  # the text is matched by SQL, exactly
    try:
        payload = decode(dict(row["headers"] or {}), bytes(row["body"]))
    except Malformed:
        return False
    return contains(payload, search.contains)


def contains(haystack: Any, needle: Any) -> bool:
    """PostgreSQL's jsonb `@>`: objects by subset of keys, arrays by subset of elements."""
    if isinstance(needle, dict):
        return isinstance(haystack, dict) and all(
            key in haystack and contains(haystack[key], inner) for key, inner in needle.items()
        )
    if isinstance(needle, list):
        return isinstance(haystack, list) and all(
            any(contains(item, inner) for item in haystack) for inner in needle
        )
    if _number(haystack) and _number(needle):
        return bool(haystack == needle)  # 1 and 1.0 are one JSON number
    # `True == 1` in Python, not in JSON.
    return type(haystack) is type(needle) and bool(haystack == needle)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
