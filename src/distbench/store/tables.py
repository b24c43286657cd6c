"""SQL tables. API schemas live in ``distbench.api.schemas``; these are the storage shape only."""

from __future__ import annotations

import sqlalchemy as sa

from distbench.run_state import ACTIVE_STATES, END_STATES, RunState

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Plain strings in the order migration 0003 wrote them, so the constraint's text is the same
# whichever way the table is built.
_CHECKED_STATES = tuple(str(state) for state in (*ACTIVE_STATES, *END_STATES, RunState.QUEUED))

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    # Naive UTC everywhere: SQLite has no time zones, and one convention on both databases keeps
    # comparisons (``since``) identical.
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("started_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("job_id", sa.String(36), nullable=False, unique=True),
    sa.Column("job_metadata", sa.JSON, nullable=False),
    sa.Column("num_workers", sa.Integer, nullable=False),
    sa.Column("num_cpus", sa.Float, nullable=False),
    sa.Column("max_bandwidth", sa.Float),
    sa.Column("benchmark", sa.String(100), nullable=False),
    sa.Column("backend", sa.String(16), nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("time_limit_s", sa.Float),
    sa.Column("start_timeout_s", sa.Float),
    sa.Column("gpu", sa.Boolean, nullable=False, server_default=sa.false()),
    # Custom command runs only (NULL for benchmark runs): the argv each worker runs, and where.
    sa.Column("command", sa.JSON),
    sa.Column("working_dir", sa.String(4096)),
    sa.CheckConstraint(f"state IN {_CHECKED_STATES!r}", name="state"),
)

# The one-active-run rule lives in the database: a unique index over a constant, restricted to
# active rows, admits at most one such row however many requests race (a check followed by an
# insert would not).
sa.Index(
    "uq_runs_one_active",
    sa.literal_column("(1)"),
    unique=True,
    sqlite_where=runs.c.state.in_(ACTIVE_STATES),
    postgresql_where=runs.c.state.in_(ACTIVE_STATES),
    _table=runs,
)

pods = sa.Table(
    "pods",
    metadata,
    # Pod names embed the run id, so a name is never reused; its metrics outlive the pod.
    sa.Column("name", sa.String(253), primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE")),
    sa.Column("rank", sa.Integer),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("ip", sa.String(64), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE")),
    sa.Column("pod_name", sa.String(253), sa.ForeignKey("pods.name", ondelete="CASCADE")),
    sa.Column("name", sa.String(200), nullable=False),
    # Microseconds since the Unix epoch, UTC (see distbench.timefmt for why an integer).
    sa.Column("date_us", sa.BigInteger, nullable=False),
    # NULL stands for NaN: SQLite silently turns a stored NaN into NULL, so the store maps NaN to
    # NULL on both databases and back on the way out, keeping diverged losses visible.
    sa.Column("value", sa.Float),
    # A value that is not a number (MLBench's TaskResult sentence), as posted; ``value`` is NULL
    # then. Outside the series indexes: rare, and up to 10,000 characters long.
    sa.Column("text_value", sa.Text),
    sa.Column("cumulative", sa.Boolean, nullable=False, default=False),
    sa.Column("metadata", sa.Text, nullable=False, default=""),
    sa.CheckConstraint("(run_id IS NULL) <> (pod_name IS NULL)", name="exactly_one_owner"),
    # Both series indexes carry the value, so downsampling (min and max per time bucket) scans
    # the index alone, and pod series, read as (date, value), never touch the table.
    # Partial: a point belongs to a run or to a pod, so each index holds only its own half and
    # every insert maintains one of them, not both.
    sa.Index(
        "ix_metrics_run_series",
        "run_id",
        "name",
        "date_us",
        "value",
        sqlite_where=sa.text("run_id IS NOT NULL"),
        postgresql_where=sa.text("run_id IS NOT NULL"),
    ),
    sa.Index(
        "ix_metrics_pod_series",
        "pod_name",
        "name",
        "date_us",
        "value",
        sqlite_where=sa.text("pod_name IS NOT NULL"),
        postgresql_where=sa.text("pod_name IS NOT NULL"),
    ),
)
