"""event_bodies: each event's body in a table of its own

An event's row changes at every step of its life (claimed, settled, replayed). SQLite rewrites
a whole row for any change, and PostgreSQL writes a new version of it, so a body kept in the
row was copied at every step. Bodies as providers send them are 2-4 KB (Stripe) to ~20 KB
(a GitHub workflow_run). Two status changes of a 4 KB-body row, in batches of 50: SQLite 22-24
us and 10 KB of WAL an event (20 KB bodies: 77-80 us, 42 KB), PostgreSQL 34-38 us of backend
CPU and 4.4 KB of WAL; with the body apart, 5 us and 0.8 KB, 28 us and 1.2 KB.

The bodies move in one statement; on SQLite dropping the column rebuilds `events` (a copy of
the table's other columns). lz4 on PostgreSQL, as 0009 set for events.body. An API of the
previous version still running answers 503 from the moment this has run (it writes the body
column), so senders retry; on PostgreSQL the table is locked against writes first, so no event
it acknowledged while the bodies were being copied is left behind without its body.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:00:00

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel  # noqa: F401
from sqlalchemy.exc import DBAPIError

revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "event_bodies",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"]),
        sa.PrimaryKeyConstraint("event_id"),
    )
    _lz4()
    if op.get_bind().dialect.name == "postgresql":
        # Inserts wait here until the migration commits (SQLite's writer lock does the same).
        op.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
    op.execute("INSERT INTO event_bodies (event_id, body) SELECT id, body FROM events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("body")


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=False, server_default=""))
    op.execute(
        "UPDATE events SET body = (SELECT body FROM event_bodies WHERE event_id = events.id)"
    )
    with op.batch_alter_table("events") as batch:
        batch.alter_column("body", server_default=None)
    op.drop_table("event_bodies")


def _lz4() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    statement = "ALTER TABLE event_bodies ALTER COLUMN body SET COMPRESSION lz4"
    if op.get_context().as_sql:
        op.execute(statement)
        return
    if (bind.dialect.server_version_info or (0,)) < (14,):
        return
    try:
        with bind.begin_nested():  # a server without lz4 refuses it; pglz then
            bind.exec_driver_sql(statement)
    except DBAPIError:
        pass
