"""Helpers shared by the store tests: migrating to a given revision and raw rows written as an
older schema would hold them (the store's own functions write the newest schema)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import command

from distbench.store import schema

NOW = dt.datetime(2026, 1, 1)


def migrate(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), revision)


def insert_run(conn: sa.Connection, run_id: int, state: str) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO runs (id, name, created_at, state, job_id, job_metadata, num_workers, "
            "num_cpus, benchmark, backend, options, gpu) VALUES (:id, 'r', :now, :state, :job, "
            "'{}', 1, 1, 'digits', 'gloo', '{}', false)"
        ),
        {"id": run_id, "now": NOW, "state": state, "job": f"job-{run_id}"},
    )


def count(conn: sa.Connection, table: str) -> int:
    return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
