"""Metric points: writing them in bulk and reading series, raw or downsampled.

Series come back as rows ``(date_us, value, cumulative, metadata)`` grouped by metric name; the
API formats them. NaN is stored as NULL (see ``tables.metrics``) and restored here. A value that
is text (``distbench.metric_value``) is stored in ``text_value`` and comes back as the ``str``;
downsampling picks numbers only.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

from distbench.errors import NotFound
from distbench.store.pods import existing_pod_names
from distbench.store.records import MetricPoint
from distbench.store.runs import existing_run_ids
from distbench.store.tables import metrics

NAN = math.nan

PointRow: TypeAlias = tuple[int, float | str, bool, str]
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
    check_owners(conn=conn, points=points)
    insert_rows(conn=conn, points=points)
    return len(points)


def check_owners(
    *,
    conn: sa.Connection,
    points: Sequence[MetricPoint],
    known_runs: set[int] | None = None,
    known_pods: set[str] | None = None,
) -> None:
    """Raise ``NotFound`` naming every unknown run id and pod name of ``points``. Owners found
    are added to ``known_runs``/``known_pods`` (runs and pods are never deleted, so a cache of
    them never goes stale) and owners already there are not looked up again."""
    known_runs = set() if known_runs is None else known_runs
    known_pods = set() if known_pods is None else known_pods
    run_ids = {p.run_id for p in points if p.run_id is not None} - known_runs
    pod_names = {p.pod_name for p in points if p.pod_name is not None} - known_pods
    found_runs = existing_run_ids(conn=conn, run_ids=run_ids)
    found_pods = existing_pod_names(conn=conn, names=pod_names)
    known_runs |= found_runs
    known_pods |= found_pods
    missing_runs = sorted(run_ids - found_runs)
    missing_pods = sorted(pod_names - found_pods)
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


_COLUMNS = "run_id, pod_name, name, date_us, value, text_value, cumulative, metadata"


def insert_rows(*, conn: sa.Connection, points: Sequence[MetricPoint]) -> None:
    """Insert without checks, the fastest way each database offers: COPY on PostgreSQL, one
    prepared executemany on SQLite (SQLAlchemy's per-row parameter processing cost three times
    what the database did; ``bench/ingest.py`` measures this path)."""
    rows = [
        (
            p.run_id,
            p.pod_name,
            p.name,
            p.date_us,
            # NaN, the one value unequal to itself, and text are NULL here.
            None if p.value != p.value or isinstance(p.value, str) else p.value,
            p.value if isinstance(p.value, str) else None,
            p.cumulative,
            p.metadata,
        )
        for p in points
    ]
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY metrics ({_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
    else:
        # Column names are this module's constant; values travel as parameters.
        insert = f"INSERT INTO metrics ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
        conn.exec_driver_sql(insert, rows)


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


# text_value is read only where value is NULL: SQLite then reads the table row only for those
# (the rest of a pod series comes from the index alone).
_TEXT = sa.case((metrics.c.value.is_(None), metrics.c.text_value)).label("text_value")
_POINT_COLUMNS = (
    metrics.c.date_us,
    metrics.c.value,
    _TEXT,
    metrics.c.cumulative,
    metrics.c.metadata,
)


def fetch_raw(conn: sa.Connection, query: sa.ClauseElement) -> list[tuple[Any, ...]]:
    """The rows of ``query`` as plain tuples from the database driver.

    Series reads return hundreds of thousands of rows; SQLAlchemy's per-row result processing
    cost twice what the query itself did, so the statement is compiled by SQLAlchemy (filters
    stay in one place) and run on the driver's cursor in the same transaction.
    """
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)
    params: Any = compiled.construct_params()
    if compiled.positional:
        params = [params[name] for name in compiled.positiontup or ()]
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(compiled.string, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _value(number: float | None, text: str | None) -> float | str:
    if number is not None:
        return number
    return NAN if text is None else text


def _point(row: Sequence[Any]) -> PointRow:
    """A row of ``_POINT_COLUMNS`` as a ``PointRow``."""
    return (row[0], _value(row[1], row[2]), bool(row[3]), row[4])


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
        rows = fetch_raw(conn, query.order_by(metrics.c.name, metrics.c.date_us))
        return {
            # _value inlined: a call per point cost a tenth of the read.
            name: [
                (d, v if v is not None else NAN if t is None else t, bool(c), m)
                for _, d, v, t, c, m in group
            ]
            for name, group in itertools.groupby(rows, key=operator.itemgetter(0))
        }
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
        for (pod, name), group in itertools.groupby(
            fetch_raw(conn, query), key=operator.itemgetter(0, 1)
        ):
            result.setdefault(pod, {})[name] = [
                (d, v if v is not None else NAN if t is None else t, bool(c), m)
                for _, _, d, v, t, c, m in group
            ]
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
    each giving its lowest and its highest point (so a spike is never averaged away). Text and
    NaN points have no place on that scale (their ``value`` is NULL, which MIN and MAX skip):
    a downsampled series holds numbers only, unless it has none."""
    # A short series is returned whole: reading max_points + 1 rows says so without counting
    # (a count scans the whole index range).
    head = fetch_raw(conn, base.order_by(metrics.c.date_us).limit(max_points + 1))
    if len(head) <= max_points:
        return [_point(row) for row in head]
    first_us = head[0][0]
    last_us = conn.execute(
        base.with_only_columns(metrics.c.date_us).order_by(metrics.c.date_us.desc()).limit(1)
    ).scalar_one()
    # A float scale, not ``* buckets / width`` in integers: that product overflows 64 bits for
    # series spanning decades at fine resolution.
    scale = max(1, max_points // 2) / (last_us - first_us + 1)
    offset = (metrics.c.date_us - first_us) * sa.literal(scale, sa.Float)
    if conn.dialect.name == "sqlite":
        bucket = sa.cast(offset, sa.BigInteger)  # truncates, and offset is never negative
    else:
        bucket = sa.cast(sa.func.floor(offset), sa.BigInteger)
    # Two passes over the index range, the same on both databases: the lowest and highest
    # value of each bucket, then the points holding them. (Ordering rows inside groups, as
    # DISTINCT ON or window functions do, sorted the whole series and cost three times more.)
    extremes = base.with_only_columns(
        bucket.label("bucket"), sa.func.min(metrics.c.value), sa.func.max(metrics.c.value)
    ).group_by(bucket)
    wanted: set[tuple[int, float]] = set()
    for key, low, high in fetch_raw(conn, extremes.order_by(None)):
        if low is not None:
            wanted.update(((key, low), (key, high)))
    if not wanted:  # every value NaN or text
        return [_point(row) for row in head[:max_points]]
    holders = base.with_only_columns(*_POINT_COLUMNS, bucket.label("bucket")).where(
        metrics.c.value.in_(sorted({value for _, value in wanted}))
    )
    chosen: list[PointRow] = []
    for row in fetch_raw(conn, holders.order_by(metrics.c.date_us)):
        key = (row[5], row[1])
        if key in wanted:
            wanted.discard(key)  # one point per extreme, the earliest
            chosen.append(_point(row))
    return chosen[:max_points]


def _date_of(point: PointRow) -> int:
    return point[0]


def downsample_rows(points: list[PointRow], max_points: int) -> list[PointRow]:
    """The in-memory twin of ``_downsampled_in_sql``, for series already fetched: text points
    are left out of a downsampled series, as there."""
    if len(points) <= max_points:
        return points
    numbers = [(d, v, c, m) for d, v, c, m in points if not isinstance(v, str)]
    if not numbers:  # every value text
        return points[:max_points]
    first_us = points[0][0]
    scale = max(1, max_points // 2) / (points[-1][0] - first_us + 1)
    low: dict[int, tuple[int, float, bool, str]] = {}
    high: dict[int, tuple[int, float, bool, str]] = {}
    for point in numbers:
        key = int((point[0] - first_us) * scale)
        value = point[1]
        if key not in low or value < low[key][1] or math.isnan(low[key][1]):
            low[key] = point
        if key not in high or value > high[key][1] or math.isnan(high[key][1]):
            high[key] = point
    chosen: dict[PointRow, None] = dict.fromkeys((*low.values(), *high.values()))
    return sorted(chosen, key=_date_of)[:max_points]
