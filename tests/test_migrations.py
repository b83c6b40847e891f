"""The migrations build the schema the models describe: a table or column added to one and
not the other would fail at run time, in production, not here."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from hub.admin import models as admin_models  # noqa: F401  (register the tables)
from hub.events import models  # noqa: F401
from hub.incidents import models as incident_models  # noqa: F401
from hub.runtime.db import make_engine


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_the_migrated_schema_matches_the_models(database, request):
    engine = make_engine(request.getfixturevalue(database))  # both fixtures migrate to head
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert differences == []
