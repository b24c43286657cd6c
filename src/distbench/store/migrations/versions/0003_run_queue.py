"""runs: the QUEUED state, for runs that wait their turn behind the active one

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD_STATES = "('INITIALIZED', 'STARTED', 'FINISHED', 'FAILED', 'ABORTED')"
NEW_STATES = "('INITIALIZED', 'STARTED', 'FINISHED', 'FAILED', 'ABORTED', 'QUEUED')"


def _replace_state_check(old: str, new: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        # op.f: the name as written, not passed through the naming convention again.
        op.drop_constraint(op.f("ck_runs_state"), "runs", type_="check")
        op.create_check_constraint(op.f("ck_runs_state"), "runs", sa.text(f"state IN {new}"))
        return
    # SQLite cannot alter a CHECK constraint, and rebuilding the table (batch mode) is unsafe
    # here: the migration runs inside a transaction, where foreign keys cannot be switched off,
    # so dropping the old runs table would cascade-delete every pod and metric. SQLite documents
    # editing the stored CREATE TABLE text instead, for changes that leave the stored rows valid
    # (https://sqlite.org/lang_altertable.html, "making other kinds of table schema changes"):
    # every existing row satisfies both state lists, since no row is QUEUED before the upgrade.
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'"
    ).scalar_one()
    if f"state IN {old}" not in sql:
        raise RuntimeError(f"unexpected runs table, its state check is not {old}: {sql}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'runs'",
        (sql.replace(f"state IN {old}", f"state IN {new}"),),
    )
    # Bumping the version makes every connection, this one included, re-read the schema.
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    # QUEUED stays outside the one-active-run index (its WHERE lists INITIALIZED and STARTED
    # only): a queued run is not active, so any number may wait.
    _replace_state_check(OLD_STATES, NEW_STATES)


def downgrade() -> None:
    # A queued run has never started: it goes back as aborted, which the old states can hold.
    op.execute("UPDATE runs SET state = 'ABORTED' WHERE state = 'QUEUED'")
    _replace_state_check(NEW_STATES, OLD_STATES)
