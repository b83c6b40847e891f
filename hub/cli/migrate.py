"""`hub migrate` in one line: which database, and from which revision to which.

Alembic does the work exactly as before (hub.runtime.migrate.upgrade); only its INFO lines
(plugin set-up, "Context impl", one per revision run) are kept off the terminal."""

from __future__ import annotations

import logging


def migrate_quietly(database_url: str) -> str:
    """Upgrade to head; the line to print, e.g. `database at sqlite:///hub.db migrated to
    0005 (from 0003)` or `database at ... already at 0005`. The password is never shown."""
    from sqlalchemy import make_url

    from hub.runtime.migrate import upgrade

    logging.getLogger("alembic").setLevel(logging.WARNING)
    shown = make_url(database_url).render_as_string(hide_password=True)
    before = current_revision(database_url)
    upgrade(database_url)
    after = current_revision(database_url)
    if before == after:
        return f"database at {shown} already at {after}"
    return f"database at {shown} migrated to {after} (from {before or 'an empty database'})"


def current_revision(database_url: str) -> str | None:
    """The revision Alembic recorded in the database; None before the first migration."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
