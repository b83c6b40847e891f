"""rules and silences: where each incident goes, which rule decided each run, reloads, silences

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:00:00

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate renders sqlmodel types)
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
INCIDENT_COLUMNS = (
    "channels",
    "github_repo",
    "mention",
    "mirrors",
    "rule",
    "silence_id",
    "silenced_until",
)


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "rules_reloads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "silences",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("match", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_silences_ends_at"), "silences", ["ends_at"], unique=False)
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("channels", JSON, nullable=True))
        batch.add_column(
            sa.Column("github_repo", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch.add_column(
            sa.Column("mention", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch.add_column(sa.Column("mirrors", JSON, nullable=True))
        batch.add_column(
            sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
        )
        batch.add_column(
            sa.Column("silence_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
        batch.add_column(sa.Column("silenced_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(
            sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("rule")
    with op.batch_alter_table("incidents") as batch:
        for name in INCIDENT_COLUMNS:
            batch.drop_column(name)
    op.drop_index(op.f("ix_silences_ends_at"), table_name="silences")
    op.drop_table("silences")
    op.drop_table("rules_reloads")
