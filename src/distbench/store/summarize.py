"""MLBench's ``summarize=N``: each series averaged in groups of consecutive points.

MLBench's dashboard cut a series of ``n`` points (after ``since`` and ``metric_filter``) into
groups of ``ceil(n / N)`` consecutive points and answered one point per group: the group's first
date, its ``cumulative`` flag, and the mean of its values. A series of at most ``N`` points came
back unchanged, and ``last_n`` then took the newest points of the summarized series. Scripts
written for MLBench plot these means, so distbench computes the same ones, with two deliberate
differences:

- MLBench dropped a last group shorter than the others (the newest points of a running run
  vanished from every summarized poll); here it is averaged over its own length. The answer
  still has at most ``N`` points.
- Values that are not numbers (MLBench's ``TaskResult`` sentence) cannot be averaged: they pass
  through as posted, in date order, and the numeric points around them are grouped as if they
  were absent (MLBench answered a 500 for such a series).

A summarized point keeps the metadata of its group's first point, as it keeps its date.
``max_points`` (ours) applies last, to the summarized and ``last_n``-cut series.
"""

from __future__ import annotations

import dataclasses
import math

import sqlalchemy as sa

from distbench.store import metrics as metric_store
from distbench.store.metrics import PointRow, Series, SeriesQuery


def summarize_points(points: list[PointRow], groups: int) -> list[PointRow]:
    """``points`` (date order) as at most ``groups`` group means, plus any text points."""
    numeric = [point for point in points if _is_number(point[1])]
    if len(numeric) <= groups:
        return points
    size = math.ceil(len(numeric) / groups)
    means: list[PointRow] = []
    for start in range(0, len(numeric), size):
        group = numeric[start : start + size]
        first_date, _, cumulative, metadata = group[0]
        mean = math.fsum(float(point[1]) for point in group) / len(group)
        means.append((first_date, mean, cumulative, metadata))
    texts = [point for point in points if not _is_number(point[1])]
    if not texts:
        return means
    return sorted([*means, *texts], key=lambda point: point[0])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float)


def summarize_series(series: Series, groups: int, spec: SeriesQuery) -> Series:
    """Every series summarized, then cut to ``spec.last_n`` and ``spec.max_points``."""
    result: Series = {}
    for name, points in series.items():
        summarized = summarize_points(points, groups)
        if spec.last_n is not None:
            summarized = summarized[-spec.last_n :]
        if spec.max_points is not None:
            summarized = metric_store.downsample_rows(summarized, spec.max_points)
        result[name] = summarized
    return result


def _whole(spec: SeriesQuery) -> SeriesQuery:
    # Groups are formed over every point after since/metric_filter, as MLBench did; last_n and
    # max_points cut the summarized series, not the stored one.
    return dataclasses.replace(spec, last_n=None, max_points=None)


def read_series(
    *,
    conn: sa.Connection,
    spec: SeriesQuery,
    summarize: int | None,
    run_id: int | None = None,
    pod_name: str | None = None,
) -> Series:
    """``metrics.read_series``, summarized when ``summarize`` is given."""
    if summarize is None:
        return metric_store.read_series(conn=conn, run_id=run_id, pod_name=pod_name, spec=spec)
    whole = metric_store.read_series(conn=conn, run_id=run_id, pod_name=pod_name, spec=_whole(spec))
    return summarize_series(whole, summarize, spec)


def read_all_pod_series(
    *, conn: sa.Connection, spec: SeriesQuery, summarize: int | None
) -> dict[str, Series]:
    """``metrics.read_all_pod_series``, summarized when ``summarize`` is given."""
    if summarize is None:
        return metric_store.read_all_pod_series(conn=conn, spec=spec)
    every_pod = metric_store.read_all_pod_series(conn=conn, spec=_whole(spec))
    return {pod: summarize_series(series, summarize, spec) for pod, series in every_pod.items()}
