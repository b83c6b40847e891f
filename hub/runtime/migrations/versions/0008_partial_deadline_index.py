"""events.deadline index: partial (deadline IS NOT NULL)

Only active events carry a deadline. The full index made every `ignored` row the ingress
inserts, and every settle, write an index entry nobody reads: about 2.5 µs of the ~18 µs a
row costs SQLite in a commit batch, measured here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 07:30:00

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

WHERE = sa.text("deadline IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_events_deadline", table_name="events")
    op.create_index(
        "ix_events_deadline",
        "events",
        ["deadline"],
        unique=False,
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_events_deadline", table_name="events")
    op.create_index("ix_events_deadline", "events", ["deadline"], unique=False)
