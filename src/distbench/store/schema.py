"""Schema versions: Alembic migrations, applied by ``distbench db upgrade`` or, for a fresh SQLite
file, by ``serve`` itself."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from distbench.errors import SchemaOutOfDate

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(conn: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to the newest schema (a no-op when it is there already)."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")


def ensure_current(engine: sa.Engine, *, upgrade_if_behind: bool) -> None:
    """Check the schema is at head. With ``upgrade_if_behind`` migrate instead of refusing."""
    current = current_revision(engine)
    if current == head_revision():
        return
    if upgrade_if_behind:
        upgrade(engine)
        return
    where = "empty" if current is None else f"at revision {current}"
    raise SchemaOutOfDate(
        f"the database schema is {where}, but this distbench needs revision {head_revision()}: "
        "run `distbench db upgrade --database-url URL` (back the database up first), then start "
        "the server again"
    )
