"""events.body compressed with lz4 on PostgreSQL

Real webhook bodies are past TOAST's ~2 KB threshold: a Stripe payment_intent event as sent is
2-4 KB pretty-printed, a GitHub workflow_run ~20 KB compact. PostgreSQL compresses each such
value as the row goes in, with pglz by default. Multi-row INSERTs of 16 events, as the ingress
sends them (tests/bench/body_compression.py, two runs), backend CPU per event, pglz -> lz4:
2 KB 49-59 -> 32-37 us, 4 KB 70-77 -> 35-44 us, 20 KB 236-275 -> 49-54 us; stored in about the
same space (4 KB: 2,214 -> 2,461 B a row; 20 KB: 5,920 -> 4,531 B). Only values written
from now on use it: no rewrite, no long lock.

PostgreSQL 14 and later, built with lz4 (Debian's and the official Docker images' are).
Where it is not, the column keeps pglz and the hub works as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 22:30:00

"""

from typing import Sequence, Union

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    statement = f"ALTER TABLE events ALTER COLUMN body SET COMPRESSION {method}"
    if op.get_context().as_sql:  # offline: the SQL to review, for a PostgreSQL 14 or later
        op.execute(statement)
        return
    if (bind.dialect.server_version_info or (0,)) < (14,):
        return
    try:
        # A savepoint: a server built without lz4 refuses the statement, and the migration's
        # transaction must go on without it.
        with bind.begin_nested():
            bind.exec_driver_sql(statement)
    except DBAPIError:
        pass


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")
