"""events.claimed_by: the consumer whose claim holds an event `processing`

`hub worker` knows when one of its processes dies and which consumer id it ran under; with
this it hands that process's claimed events back at once instead of waiting out their lease
(30 s by default). Nullable, no index: the ingress writes NULL, and the one query by it
first narrows to `processing` events through the status index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 13:00:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Adding a nullable column without a default rewrites nothing, on either database.
    op.add_column("events", sa.Column("claimed_by", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("claimed_by")
