"""Many rows in one statement (hub/runtime/rows.py), on both databases: what goes in comes
back as it went, past PostgreSQL's 65,535 parameters a statement, and a list matched with
`one_of` finds what IN would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    cast,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from hub.runtime.db import make_engine
from hub.runtime.rows import insert_rows, one_of

META = MetaData()
ROWS = Table(
    "rows_test",
    META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("note", Text),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    engine = make_engine(url)
    META.create_all(engine)
    yield engine
    META.drop_all(engine)
    engine.dispose()


def test_rows_come_back_as_they_went_in(engine: Engine) -> None:
    at = datetime(2026, 12, 3, 8, 0, 0, 123456, tzinfo=UTC)
    rows = [
        {"name": "plain", "at": at, "note": None},
        {"name": "quote ' and $1 and %s", "at": at, "note": "ünïcode \\ \n"},
    ]
    with engine.begin() as conn:
        insert_rows(conn, ROWS, rows)
        got = conn.execute(select(ROWS.c.name, ROWS.c.at, ROWS.c.note).order_by(ROWS.c.id)).all()
    assert [(r.name, _utc(r.at), r.note) for r in got] == [(r["name"], at, r["note"]) for r in rows]


def _utc(value: datetime) -> datetime:
    # SQLite keeps UTC without its offset (SQLAlchemy's storage format); PostgreSQL an aware value.
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def test_datetimes_are_stored_as_sqlalchemy_stores_them(engine: Engine) -> None:
    # SQLite compares datetimes as text: a row written here must sort and match against one
    # SQLAlchemy wrote (its own format, whole microseconds, the offset left out).
    shared = datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC)
    values = [
        shared,
        shared,  # one object in several rows (a batch's links)
        datetime(2026, 12, 6, 1, 2, 3, 4, tzinfo=UTC),
        datetime(2026, 12, 6, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 12, 6),  # naive
        datetime(5, 1, 1, tzinfo=UTC),
    ]
    with engine.begin() as conn:
        insert_rows(conn, ROWS, [{"name": "rows", "at": v} for v in values])
        conn.execute(insert(ROWS), [{"name": "sqlalchemy", "at": v} for v in values])
        text_of = select(ROWS.c.name, cast(ROWS.c.at, Text)).order_by(ROWS.c.id)
        got = conn.execute(text_of).all()
    ours = [at for name, at in got if name == "rows"]
    assert ours == [at for name, at in got if name == "sqlalchemy"]
    assert len(set(ours)) == len(values) - 1


def test_more_rows_than_one_statement_takes(engine: Engine) -> None:
    # 3 columns: PostgreSQL's limit of 65,535 parameters is 21,845 rows a statement.
    at = datetime.now(UTC)
    rows = [{"name": f"n{i}", "at": at, "note": str(i)} for i in range(50_000)]
    with engine.begin() as conn:
        insert_rows(conn, ROWS, rows)
        names = {r[0] for r in conn.execute(select(ROWS.c.name))}
    assert names == {f"n{i}" for i in range(50_000)}


def test_a_column_the_table_lacks_is_refused_before_anything_is_written(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match="no column"):
        insert_rows(conn, ROWS, [{"name": "x", "at": datetime.now(UTC), "nope": 1}])
    with engine.connect() as conn:
        assert conn.execute(select(ROWS.c.id)).all() == []


def test_a_duplicate_key_is_the_integrity_error_sqlalchemy_raises(engine: Engine) -> None:
    # Callers tell a lost race (run the batch again) from a fault by this class.
    row = {"id": 7, "name": "first", "at": datetime(2026, 12, 3, tzinfo=UTC), "note": None}
    with engine.begin() as conn:
        insert_rows(conn, ROWS, [row])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert_rows(conn, ROWS, [row | {"name": "again"}])
    with engine.connect() as conn:  # the connection is usable, the first row as it was
        assert conn.execute(select(ROWS.c.name)).scalars().all() == ["first"]


def test_one_of_matches_what_is_listed(engine: Engine) -> None:
    at = datetime.now(UTC)
    with engine.begin() as conn:
        insert_rows(conn, ROWS, [{"name": n, "at": at, "note": None} for n in "abcde"])
    stmt = select(ROWS.c.name).where(one_of(ROWS.c.name, "p_names", engine.dialect.name))
    with engine.connect() as conn:
        for wanted in (["b", "d", "zz"], ["a"], []):
            got = sorted(r[0] for r in conn.execute(stmt, {"p_names": wanted}))
            assert got == sorted(set(wanted) & set("abcde"))
