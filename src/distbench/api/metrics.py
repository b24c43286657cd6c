"""Metrics: resource series of pods, training series of runs, and posting points."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from distbench.api import export
from distbench.api.body import body_doc, read_payload, validate, validate_model
from distbench.api.deps import ConnDep, SettingsDep, WriterDep
from distbench.api.encode import JSONBody, pods_series_response, series_response
from distbench.api.routing import errors, route
from distbench.api.schemas import (
    MAX_RUN_ID,
    NO_NUL,
    BatchStored,
    MetricCreate,
    MetricPublic,
    PodPoint,
    RunPoint,
)
from distbench.errors import BodyTooLarge, Forbidden, InvalidInput, NotFound
from distbench.metric_value import value_text
from distbench.store import metrics as metric_store
from distbench.store import pods as pod_store
from distbench.store import runs as run_store
from distbench.store import summarize as summarized
from distbench.store.records import MetricPoint
from distbench.store.writer import PointWriter
from distbench.timefmt import format_us, iso_or_unchanged, now_us, to_us

router = APIRouter(tags=["metrics"])

_DATETIME = TypeAdapter(dt.datetime)

SinceQuery = Annotated[
    str | None,
    Query(
        description="Only points strictly newer than this ISO 8601 date (default: all).",
        examples=["2018-08-03T09:21:38.594282Z"],
    ),
]
MaxPointsQuery = Annotated[
    int | None,
    Query(
        ge=2,
        le=1_000_000,
        description="Downsample each series to at most this many points, keeping every time "
        "bucket's lowest and highest point.",
    ),
]
LastNQuery = Annotated[
    int | None, Query(ge=1, le=10_000_000, description="Only each series' newest N points.")
]
FilterQuery = Annotated[
    str | None,
    Query(min_length=1, pattern=NO_NUL, description="Only the metric with exactly this name."),
]
SummarizeQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=10_000_000,
        description="MLBench's summarize: each series averaged in groups of consecutive points "
        "to at most N points (the group's first date, the mean value). Applied after since and "
        "metric_filter, before last_n and max_points.",
    ),
]


def parse_since(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    # An unencoded "+00:00" arrives as " 00:00" (a query string's "+" is a space).
    candidate = text.strip().replace(" ", "+") if "T" in text else text.strip()
    try:
        return to_us(_DATETIME.validate_python(iso_or_unchanged(candidate)))
    except (ValidationError, OverflowError):
        raise InvalidInput(
            f"since={text!r} is not an ISO 8601 date: use e.g. 2018-08-03T09:21:38.594282Z",
            details={"errors": [{"field": "since", "message": "not an ISO 8601 date"}]},
        ) from None


def _spec(
    since: str | None, metric_filter: str | None, last_n: int | None, max_points: int | None
) -> metric_store.SeriesQuery:
    return metric_store.SeriesQuery(
        since_us=parse_since(since),
        names=None if metric_filter is None else [metric_filter],
        last_n=last_n,
        max_points=max_points,
    )


@route(
    router,
    "GET",
    "/metrics/",
    response_model=dict[str, dict[str, list[PodPoint]]],
    responses=errors(400, 503),
)
def all_pod_metrics(
    conn: ConnDep,
    since: SinceQuery = None,
    metric_filter: FilterQuery = None,
    last_n: LastNQuery = None,
    max_points: MaxPointsQuery = None,
    summarize: SummarizeQuery = None,
) -> Response:
    """Resource metrics (CPU, memory, network) of every pod, past and present, by pod name."""
    spec = _spec(since, metric_filter, last_n, max_points)
    return pods_series_response(
        summarized.read_all_pod_series(conn=conn, spec=spec, summarize=summarize)
    )


@route(
    router,
    "GET",
    "/metrics/{pod_name_or_run_id}/",
    response_model=dict[str, list[RunPoint]] | dict[str, list[PodPoint]],
    responses={
        **errors(400, 404, 503),
        200: {
            "description": "Series by metric name; run points also carry cumulative and "
            "metadata. With format=csv or zip, a file download.",
            "content": {"text/csv": {}, "application/zip": {}},
        },
    },
)
def one_owner_metrics(
    conn: ConnDep,
    pod_name_or_run_id: Annotated[str, Path(pattern=NO_NUL)],
    since: SinceQuery = None,
    metric_type: Annotated[
        Literal["pod", "run"], Query(description="Whether the id names a pod or a run.")
    ] = "pod",
    metric_filter: FilterQuery = None,
    last_n: LastNQuery = None,
    max_points: MaxPointsQuery = None,
    summarize: SummarizeQuery = None,
    format: Annotated[
        Literal["json", "csv", "zip"] | None,
        Query(description="Download the series as a file instead."),
    ] = None,
) -> Response:
    """The series of one pod (``metric_type=pod``, the default) or one run (``metric_type=run``)."""
    spec = _spec(since, metric_filter, last_n, max_points)
    if metric_type == "run":
        run_id = _run_id(pod_name_or_run_id)
        run = run_store.get_run(conn=conn, run_id=run_id)
        series = summarized.read_series(conn=conn, run_id=run_id, spec=spec, summarize=summarize)
        if format is not None:
            return export.run_export(
                conn=conn, run=run, series=series, fmt=format, spec=spec, summarize=summarize
            )
        return series_response(series, with_details=True)
    pod_name = pod_name_or_run_id
    if not pod_store.existing_pod_names(conn=conn, names=[pod_name]):
        raise NotFound(
            f"no pod named {pod_name!r} (for a run's metrics add ?metric_type=run)",
            details={"pod_name": pod_name},
        )
    series = summarized.read_series(conn=conn, pod_name=pod_name, spec=spec, summarize=summarize)
    if format is not None:
        return export.pod_export(pod_name=pod_name, series=series, fmt=format)
    return series_response(series, with_details=False)


def _run_id(text: str) -> int:
    # isdigit() alone admits digits int() refuses ("²") and int() refuses over 4,300 digits:
    # both were 500s. An id past the database's integer type is a 400 like /api/runs/{id}/'s.
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_RUN_ID))
    if not digits or not 1 <= int(text) <= MAX_RUN_ID:
        raise InvalidInput(
            f"{_shortened(text)!r} is not a run id: with metric_type=run the path holds a run's "
            f"integer id (1 to {MAX_RUN_ID})",
            details={"errors": [{"field": "pod_name_or_run_id", "message": "not a run id"}]},
        )
    return int(text)


def _shortened(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _to_point(
    item: MetricCreate, caller_run_id: int | None, index: int | None = None
) -> MetricPoint:
    where = "" if index is None else f"point {index}: "
    if item.pod_name is None and item.run_id is None:
        raise InvalidInput(
            f"{where}give pod_name (a pod's point) or run_id (a run's point)",
            details={"errors": [{"field": "pod_name/run_id", "message": "one is required"}]},
        )
    # The seed's own example sends both and documents the pod's point as the answer: with
    # both, the point is the pod's and run_id is not used.
    run_id = None if item.pod_name is not None else item.run_id
    if caller_run_id is not None and run_id != caller_run_id:
        raise Forbidden(f"{where}this run token may only post metrics of run {caller_run_id}")
    return MetricPoint(
        name=item.name,
        date_us=now_us() if item.date is None else to_us(item.date),
        value=item.value,
        run_id=run_id,
        pod_name=item.pod_name,
        cumulative=item.cumulative,
        metadata=item.metadata,
    )


async def _store(request: Request, points: list[MetricPoint]) -> None:
    """Hand the points to the group-commit writer and wait until they are committed."""
    writer: PointWriter = request.app.state.writer
    await writer.submit(points)


def _count_ingested(request: Request, points: list[MetricPoint]) -> None:
    counter = request.app.state.observability.points_ingested
    runs = sum(1 for p in points if p.run_id is not None)
    if runs:
        counter.labels(kind="run").inc(runs)
    if len(points) - runs:
        counter.labels(kind="pod").inc(len(points) - runs)


@route(
    router,
    "POST",
    "/metrics",
    status_code=201,
    response_model=MetricPublic,
    responses=errors(400, 401, 403, 404, 413, 503),
    openapi_extra=body_doc(
        {"$ref": "#/components/schemas/MetricCreate"},
        description="One point of a pod (pod_name) or a run (run_id); with both, the pod's.",
    ),
)
async def post_metric(request: Request, caller: WriterDep, settings: SettingsDep) -> Response:
    """Save one metric point of a run or a pod."""
    item = validate_model(MetricCreate, await read_payload(request, settings.max_body_bytes))
    point = _to_point(item, caller.run_id)
    await _store(request, [point])
    _count_ingested(request, [point])
    saved: dict[str, Any] = (
        {"pod_name": point.pod_name} if point.pod_name is not None else {"run_id": point.run_id}
    )
    saved.update(
        name=point.name,
        date=format_us(point.date_us),
        value=value_text(point.value),
        cumulative=point.cumulative,
        metadata=point.metadata,
    )
    return JSONBody(saved, status_code=201)


@route(
    router,
    "POST",
    "/metrics/batch",
    status_code=201,
    response_model=BatchStored,
    responses=errors(400, 401, 403, 404, 413, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A JSON list of points, stored all together or not at all.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/MetricCreate"},
                        "maxItems": 10_000,
                    }
                }
            },
        }
    },
)
async def post_metrics_batch(
    request: Request, caller: WriterDep, settings: SettingsDep
) -> Response:
    """Save many points in one atomic request (all stored, or none and an error)."""
    payload = await read_payload(request, settings.max_body_bytes)
    if not isinstance(payload, list):
        raise InvalidInput("the batch body must be a JSON list of metric points")
    if len(payload) > settings.max_batch_points:
        raise BodyTooLarge(
            f"a batch holds at most {settings.max_batch_points} points, this one "
            f"{len(payload)}: split it",
            details={"limit_points": settings.max_batch_points},
        )
    items = validate(_ITEMS, payload)
    points = [_to_point(item, caller.run_id, index) for index, item in enumerate(items)]
    await _store(request, points)
    _count_ingested(request, points)
    return JSONBody({"stored": len(points)}, status_code=201)


_ITEMS = TypeAdapter(list[MetricCreate])
