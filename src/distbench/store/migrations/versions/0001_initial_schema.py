"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("job_metadata", sa.JSON(), nullable=False),
        sa.Column("num_workers", sa.Integer(), nullable=False),
        sa.Column("num_cpus", sa.Float(), nullable=False),
        sa.Column("max_bandwidth", sa.Float(), nullable=True),
        sa.Column("benchmark", sa.String(length=100), nullable=False),
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("time_limit_s", sa.Float(), nullable=True),
        sa.Column("start_timeout_s", sa.Float(), nullable=True),
        sa.Column("gpu", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint(
            "state IN ('INITIALIZED', 'STARTED', 'FINISHED', 'FAILED', 'ABORTED')",
            name=op.f("ck_runs_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_runs_job_id")),
    )
    # At most one active run, enforced by the database (see distbench.store.tables).
    active = sa.text("state IN ('INITIALIZED', 'STARTED')")
    op.create_index(
        "uq_runs_one_active",
        "runs",
        [sa.literal_column("(1)")],
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )
    op.create_table(
        "pods",
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_pods_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pods")),
    )
    op.create_table(
        "metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("pod_name", sa.String(length=253), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("date_us", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("cumulative", sa.Boolean(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "(run_id IS NULL) <> (pod_name IS NULL)", name=op.f("ck_metrics_exactly_one_owner")
        ),
        sa.ForeignKeyConstraint(
            ["pod_name"], ["pods.name"], name=op.f("fk_metrics_pod_name_pods"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_metrics_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metrics")),
    )
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        # Partial indexes: each point is a run's or a pod's (see distbench.store.tables).
        pods_only = sa.text("pod_name IS NOT NULL")
        runs_only = sa.text("run_id IS NOT NULL")
        batch_op.create_index(
            "ix_metrics_pod_series",
            ["pod_name", "name", "date_us", "value"],
            unique=False,
            sqlite_where=pods_only,
            postgresql_where=pods_only,
        )
        batch_op.create_index(
            "ix_metrics_run_series",
            ["run_id", "name", "date_us", "value"],
            unique=False,
            sqlite_where=runs_only,
            postgresql_where=runs_only,
        )


def downgrade() -> None:
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_metrics_run_series")
        batch_op.drop_index("ix_metrics_pod_series")

    op.drop_table("metrics")
    op.drop_table("pods")
    op.drop_index("uq_runs_one_active", table_name="runs")
    op.drop_table("runs")
