"""JSON columns read back exactly what was written, on both databases. Integers past 64 bits
stay integers: orjson, faster and tempting as the engine's JSON reader, reads them as floats
without an error (tried: 2**70 + 1 came back 1.1805916207174113e+21). On PostgreSQL the engine
writes with orjson, which refuses them: such a value is written by the json module instead."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from hub.events.models import JSONType
from hub.runtime.db import make_engine

VALUES: list[Any] = [
    {"content-type": "application/json", "stripe-signature": "t=1,v1=ab"},
    {"big": 2**70 + 1, "negative": -(2**65) - 1, "float": 0.1, "unicode": "Zürich ✓", "none": None},
    [1, [2, {"deep": True}]],
]


@pytest.mark.parametrize(
    "url_fixture", ["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.services)]
)
def test_json_values_round_trip(request: pytest.FixtureRequest, url_fixture: str) -> None:
    engine = make_engine(request.getfixturevalue(url_fixture))
    table = Table("json_probe", MetaData(), Column("id", Integer, primary_key=True),
                  Column("value", JSONType))  # fmt: skip
    try:
        table.create(engine)
        with engine.begin() as conn:
            conn.execute(insert(table), [{"id": i, "value": v} for i, v in enumerate(VALUES)])
        with engine.connect() as conn:
            read = [row.value for row in conn.execute(select(table).order_by(table.c.id))]
        assert read == VALUES
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()
