"""Metric points: writing them in bulk and reading series, raw or downsampled.

Series come back as rows ``(date_us, value, cumulative, metadata)`` grouped by metric name; the
API formats them. NaN is stored as NULL (see ``tables.metrics``) and restored here.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import sqlalchemy as sa

from distbench.errors import NotFound
from distbench.store.pods import existing_pod_names
from distbench.store.records import MetricPoint
from distbench.store.runs import existing_run_ids
from distbench.store.tables import metrics

NAN = math.nan

PointRow: TypeAlias = tuple[int, float, bool, str]
Series: TypeAlias = dict[str, list[PointRow]]


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """What to read of one owner's series. ``None`` means no restriction."""

    since_us: int | None = None
    names: Collection[str] | None = None
    last_n: int | None = None
    max_points: int | None = None


def insert_points(*, conn: sa.Connection, points: Sequence[MetricPoint]) -> int:
    """Store ``points`` (all of them, in the caller's transaction) or raise ``NotFound`` naming
    every unknown run id and pod name. Returns the number stored."""
    if not points:
        return 0
    run_ids = {p.run_id for p in points if p.run_id is not None}
    pod_names = {p.pod_name for p in points if p.pod_name is not None}
    missing_runs = sorted(run_ids - existing_run_ids(conn=conn, run_ids=run_ids))
    missing_pods = sorted(pod_names - existing_pod_names(conn=conn, names=pod_names))
    if missing_runs or missing_pods:
        parts = []
        if missing_runs:
            parts.append(f"no run with id {', '.join(map(str, missing_runs))}")
        if missing_pods:
            parts.append(f"no pod named {', '.join(missing_pods)}")
        raise NotFound(
            "; ".join(parts) + " (GET /api/runs/ and GET /api/pods/ list what exists)",
            details={"run_ids": missing_runs, "pod_names": missing_pods},
        )
    conn.execute(
        metrics.insert(),
        [
            {
                "run_id": p.run_id,
                "pod_name": p.pod_name,
                "name": p.name,
                "date_us": p.date_us,
                "value": None if math.isnan(p.value) else p.value,
                "cumulative": p.cumulative,
                "metadata": p.metadata,
            }
            for p in points
        ],
    )
    return len(points)


def _owner_filter(run_id: int | None, pod_name: str | None) -> sa.ColumnElement[bool]:
    if run_id is not None:
        return metrics.c.run_id == run_id
    if pod_name is not None:
        return metrics.c.pod_name == pod_name
    return metrics.c.pod_name.is_not(None)


def _restrict(query: sa.Select[Any], spec: SeriesQuery) -> sa.Select[Any]:
    if spec.since_us is not None:
        query = query.where(metrics.c.date_us > spec.since_us)
    if spec.names is not None:
        query = query.where(metrics.c.name.in_(list(spec.names)))
    return query


_POINT_COLUMNS = (metrics.c.date_us, metrics.c.value, metrics.c.cumulative, metrics.c.metadata)


def _point(row: Sequence[Any]) -> PointRow:
    value = row[1]
    return (row[0], NAN if value is None else value, bool(row[2]), row[3])


def read_series(
    *,
    conn: sa.Connection,
    run_id: int | None = None,
    pod_name: str | None = None,
    spec: SeriesQuery = SeriesQuery(),
) -> Series:
    """Series of one run (``run_id``) or one pod (``pod_name``), points in date order."""
    owner = _owner_filter(run_id, pod_name)
    if spec.last_n is None and spec.max_points is None:
        query = _restrict(sa.select(metrics.c.name, *_POINT_COLUMNS).where(owner), spec)
        series: Series = {}
        for row in conn.execute(query.order_by(metrics.c.name, metrics.c.date_us)):
            value = row[2]
            series.setdefault(row[0], []).append(
                (row[1], NAN if value is None else value, bool(row[3]), row[4])
            )
        return series
    names_query = _restrict(sa.select(metrics.c.name).where(owner).distinct(), spec)
    names = sorted(conn.execute(names_query).scalars())
    return {name: _read_one(conn, owner, name, spec) for name in names}


def read_all_pod_series(
    *, conn: sa.Connection, spec: SeriesQuery = SeriesQuery()
) -> dict[str, Series]:
    """Series of every pod that has any, keyed by pod name."""
    owner = _owner_filter(None, None)
    result: dict[str, Series] = {}
    if spec.last_n is None and spec.max_points is None:
        query = _restrict(sa.select(metrics.c.pod_name, metrics.c.name, *_POINT_COLUMNS), spec)
        query = query.where(owner).order_by(metrics.c.pod_name, metrics.c.name, metrics.c.date_us)
        for row in conn.execute(query):
            value = row[3]
            result.setdefault(row[0], {}).setdefault(row[1], []).append(
                (row[2], NAN if value is None else value, bool(row[4]), row[5])
            )
        return result
    pods_query = _restrict(sa.select(metrics.c.pod_name).where(owner).distinct(), spec)
    for pod in sorted(conn.execute(pods_query).scalars()):
        result[pod] = read_series(conn=conn, pod_name=pod, spec=spec)
    return result


def _read_one(
    conn: sa.Connection, owner: sa.ColumnElement[bool], name: str, spec: SeriesQuery
) -> list[PointRow]:
    base = _restrict(sa.select(*_POINT_COLUMNS).where(owner, metrics.c.name == name), spec)
    if spec.last_n is not None:
        # The newest ``last_n`` points, then ``max_points`` applies within them.
        newest = base.order_by(metrics.c.date_us.desc()).limit(spec.last_n).subquery()
        rows = conn.execute(sa.select(newest).order_by(newest.c.date_us)).all()
        points = [_point(row) for row in rows]
        if spec.max_points is not None and len(points) > spec.max_points:
            return downsample_rows(points, spec.max_points)
        return points
    assert spec.max_points is not None
    return _downsampled_in_sql(conn, base, spec.max_points)


def _downsampled_in_sql(
    conn: sa.Connection, base: sa.Select[Any], max_points: int
) -> list[PointRow]:
    """At most ``max_points`` points: the series cut into ``max_points // 2`` equal time buckets,
    each giving its lowest and its highest point (so a spike is never averaged away)."""
    span = base.with_only_columns(
        sa.func.count(), sa.func.min(metrics.c.date_us), sa.func.max(metrics.c.date_us)
    ).order_by(None)
    count, first_us, last_us = conn.execute(span).one()
    if count <= max_points:
        return [_point(row) for row in conn.execute(base.order_by(metrics.c.date_us))]
    # A float scale, not ``* buckets / width`` in integers: that product overflows 64 bits for
    # series spanning decades at fine resolution.
    scale = max(1, max_points // 2) / (last_us - first_us + 1)
    offset = (metrics.c.date_us - first_us) * sa.literal(scale, sa.Float)
    if conn.dialect.name == "sqlite":
        bucket = sa.cast(offset, sa.BigInteger)  # truncates, and offset is never negative
    else:
        bucket = sa.cast(sa.func.floor(offset), sa.BigInteger)
    if conn.dialect.name == "sqlite":
        # SQLite fills bare columns from the row that holds the single min()/max() aggregate.
        lows = base.with_only_columns(*_POINT_COLUMNS, sa.func.min(metrics.c.value))
        highs = base.with_only_columns(*_POINT_COLUMNS, sa.func.max(metrics.c.value))
        lows, highs = lows.group_by(bucket), highs.group_by(bucket)
    else:
        ordered = _distinct_on(base.add_columns(bucket.label("bucket")).order_by(None), bucket)
        lows = ordered.order_by(bucket, metrics.c.value.asc().nulls_last())
        highs = ordered.order_by(bucket, metrics.c.value.desc().nulls_last())
    chosen = {_point(row): None for row in conn.execute(lows)}
    chosen.update((_point(row), None) for row in conn.execute(highs))
    return sorted(chosen, key=_date_of)[:max_points]


def _distinct_on(query: sa.Select[Any], expr: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """PostgreSQL's ``DISTINCT ON (expr)``. SQLAlchemy 2.1 deprecates ``.distinct(expr)`` (a
    warning, an error under pytest) in favour of ``distinct_on``, which 2.0 lacks."""
    try:
        from sqlalchemy.dialects.postgresql import distinct_on
    except ImportError:  # SQLAlchemy 2.0
        return query.distinct(expr)
    return query.ext(distinct_on(expr))


def _date_of(point: PointRow) -> int:
    return point[0]


def downsample_rows(points: list[PointRow], max_points: int) -> list[PointRow]:
    """The in-memory twin of ``_downsampled_in_sql``, for series already fetched."""
    if len(points) <= max_points:
        return points
    first_us = points[0][0]
    scale = max(1, max_points // 2) / (points[-1][0] - first_us + 1)
    low: dict[int, PointRow] = {}
    high: dict[int, PointRow] = {}
    for point in points:
        key = int((point[0] - first_us) * scale)
        value = point[1]
        if key not in low or value < low[key][1] or math.isnan(low[key][1]):
            low[key] = point
        if key not in high or value > high[key][1] or math.isnan(high[key][1]):
            high[key] = point
    chosen = dict.fromkeys((*low.values(), *high.values()))
    return sorted(chosen, key=_date_of)[:max_points]
