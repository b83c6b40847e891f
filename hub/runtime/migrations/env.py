"""Alembic environment: the URL comes from the caller (`hub migrate`), never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

# Imported for their effect: they register the tables on the metadata.
from hub.admin import models as admin_models  # noqa: F401
from hub.events import models  # noqa: F401
from hub.incidents import models as incident_models  # noqa: F401
from hub.rules import models as rules_models  # noqa: F401
from sqlmodel import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        # render_as_batch: SQLite cannot ALTER most things in place.
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
