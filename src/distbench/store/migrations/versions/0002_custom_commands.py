"""runs: command and working_dir, for custom command runs

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot alter tables in place; on PostgreSQL this is plain ALTER.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("command", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("working_dir", sa.String(length=4096), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("working_dir")
        batch.drop_column("command")
