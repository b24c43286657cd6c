"""metrics: text_value, for values that are not numbers (MLBench's TaskResult sentence)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: a plain ALTER TABLE ADD COLUMN on both databases
    # (no batch rebuild, which on SQLite would drop and recreate the metrics table).
    op.add_column("metrics", sa.Column("text_value", sa.Text(), nullable=True))


def downgrade() -> None:
    # Text points cannot be numbers: they go, rather than stay as NaN points they never were.
    op.execute("DELETE FROM metrics WHERE text_value IS NOT NULL")
    # DROP COLUMN, which SQLite has since 3.35: batch mode would rebuild the table and lose
    # the WHERE clauses of its partial indexes.
    op.execute("ALTER TABLE metrics DROP COLUMN text_value")
