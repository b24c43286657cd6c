"""A run's result in one object, written into ``job_metadata["result"]`` when the run ends:
what a user compares runs by, computed from the metrics the workers and the collector stored."""

from __future__ import annotations

import itertools
import json
from typing import Any

import sqlalchemy as sa

from distbench import cadvisor
from distbench.store import metrics as metric_store
from distbench.store import pods as pod_store
from distbench.store.records import RunRecord

RUN_METRICS = (
    "time_to_accuracy_s",
    "epoch",
    "val_accuracy",
    "train_loss",
    "samples_per_s",
    "compute_s",
    "communication_s",
    "bus_bandwidth_mbit",
)


NumberRow = tuple[int, float, bool, str]


def _numbers(points: list[metric_store.PointRow]) -> list[NumberRow]:
    """The points whose value is a number: text values (MLBench's TaskResult sentence, or a
    worker's mistake) have no place in a result computed from numbers."""
    return [(d, v, c, m) for d, v, c, m in points if not isinstance(v, str)]


def _last(series: dict[str, list[NumberRow]], name: str) -> float | None:
    points = series.get(name)
    return points[-1][1] if points else None


def peak_egress_mbit(points: list[metric_store.PointRow]) -> float | None:
    """The fastest a pod sent between two samples of its transmit counter, in Mbit/s."""
    best = None
    for (d0, v0, _, _), (d1, v1, _, _) in itertools.pairwise(_numbers(points)):
        if d1 > d0 and v1 >= v0:
            rate = (v1 - v0) * 8 / ((d1 - d0) / 1e6) / 1e6
            best = rate if best is None else max(best, rate)
    return best


def summarize(*, conn: sa.Connection, run: RunRecord) -> dict[str, Any]:
    spec = metric_store.SeriesQuery(names=RUN_METRICS)
    stored = metric_store.read_series(conn=conn, run_id=run.id, spec=spec)
    series = {name: _numbers(points) for name, points in stored.items()}
    result: dict[str, Any] = {"state": run.state}
    target = run.options.get("target_accuracy")
    tta = _last(series, "time_to_accuracy_s")
    if target is not None:
        result.update(
            target_accuracy=target, target_reached=tta is not None, time_to_accuracy_s=tta
        )
    elif tta is not None:
        # A custom command that declared its target reached, with a target of its own.
        result.update(target_reached=True, time_to_accuracy_s=tta)
    if run.started_at is not None and run.finished_at is not None:
        result["total_time_s"] = round((run.finished_at - run.started_at).total_seconds(), 3)
    for name, key in (
        ("epoch", "epochs"),
        ("val_accuracy", "final_val_accuracy"),
        ("train_loss", "final_train_loss"),
        ("samples_per_s", "samples_per_s"),
    ):
        value = _last(series, name)
        if value is not None:
            result[key] = value
    compute = sum(p[1] for p in series.get("compute_s", []))
    communication = sum(p[1] for p in series.get("communication_s", []))
    if compute + communication > 0:
        result.update(
            compute_s=round(compute, 6),
            communication_s=round(communication, 6),
            communication_share=round(communication / (compute + communication), 4),
        )
    bus = series.get("bus_bandwidth_mbit")
    if bus:
        # The largest message's bus bandwidth: the bandwidth-bound one.
        largest = max(bus, key=lambda p: json.loads(p[3] or "{}").get("bytes", 0))
        result["bus_bandwidth_mbit"] = largest[1]
    result["limits"] = {"num_cpus": run.num_cpus, "max_bandwidth_mbit": run.max_bandwidth}
    egress = []
    for pod_name in pod_store.pod_names_of_run(conn=conn, run_id=run.id):
        pod_series = metric_store.read_series(
            conn=conn,
            pod_name=pod_name,
            spec=metric_store.SeriesQuery(names=[cadvisor.TRANSMIT_BYTES]),
        )
        peak = peak_egress_mbit(pod_series.get(cadvisor.TRANSMIT_BYTES, []))
        if peak is not None:
            egress.append(peak)
    if egress:
        # Sampled every collect interval, so this is an average over that interval: it shows
        # whether a cap was the limit, not a precise link rate (bus_bandwidth_mbit is that).
        result["measured_peak_egress_mbit"] = round(max(egress), 3)
    return result
