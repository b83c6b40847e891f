"""event_bodies, attempts and incident_events: no foreign key to events

Events are never deleted (retention empties bodies and keeps the rows), and these rows are
written only for an event that exists: a body in the statement that stores its event, an
attempt or a link for an event a worker has claimed. The foreign keys caught nothing, and on
PostgreSQL each row they checked cost a lookup of the event and a row lock on it
(`FOR KEY SHARE`, written to the WAL): measured on the ingress's INSERT of 10 events as the
benchmark's 20% mix sends them, 41.4 -> 33.6 us of backend CPU an event and 1.07 -> 0.76 ms
a batch. A check planned after `events` was analyzed while empty kept a sequential scan
until the table was analyzed again: 1 ms an event at 30,000 events. SQLite rebuilds the
three tables to drop them (a copy, once).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 08:30:00

"""

from typing import Sequence, Union

from alembic import op

revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# PostgreSQL's names for them; SQLite's are unnamed, and named by this convention when the
# batch operation reflects them.
CHILDREN = ("event_bodies", "attempts", "incident_events")
NAMING = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}


def upgrade() -> None:
    for table in CHILDREN:
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.drop_constraint(f"{table}_event_id_fkey", type_="foreignkey")


def downgrade() -> None:
    for table in CHILDREN:
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.create_foreign_key(f"{table}_event_id_fkey", "events", ["event_id"], ["id"])
