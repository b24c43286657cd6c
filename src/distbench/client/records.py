"""What the distbench API answers, as frozen dataclasses, and the parsing of its JSON into them.

Dates become aware UTC datetimes and values floats, or ``str`` for a value the server keeps as
text (MLBench's ``TaskResult`` sentence; ``distbench.metric_value`` is the rule).
``distbench.client`` re-exports the public names; import them from there.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from distbench import run_state
from distbench.metric_value import MetricValue, parse_value
from distbench.run_state import RunState

# Public names of ``distbench.client`` since before ``RunState``: sets of the plain names, so
# ``run.state in END_STATES`` holds for the ``str`` a ``Run`` carries.
RUN_STATES: frozenset[str] = frozenset(state.value for state in RunState)
# QUEUED is in neither of these: waiting for its turn, a run is neither active nor ended.
ACTIVE_STATES: frozenset[str] = frozenset(state.value for state in run_state.ACTIVE_STATES)
END_STATES: frozenset[str] = frozenset(state.value for state in run_state.END_STATES)

DateLike = dt.datetime | str


# -- what the API answers --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Pod:
    """A worker pod. ``labels`` is the seed's text form; ``label_map`` the parsed labels."""

    name: str
    labels: str
    phase: str
    ip: str

    @property
    def label_map(self) -> dict[str, str]:
        """The labels as a dict (empty when the text is not a dict literal)."""
        try:
            parsed = ast.literal_eval(self.labels)
        except (ValueError, SyntaxError):
            return {}
        if not isinstance(parsed, dict):
            return {}
        return {str(key): str(value) for key, value in parsed.items()}


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a pod's resource series."""

    date: dt.datetime
    value: MetricValue


@dataclass(frozen=True, slots=True)
class RunPoint:
    """One point of a run's series. ``value`` is a ``str`` for a value posted as text."""

    date: dt.datetime
    value: MetricValue
    cumulative: bool
    metadata: str


def numbers(points: Sequence[Point | RunPoint]) -> list[float]:
    """The values of ``points`` that are numbers, in order: text values (MLBench's
    ``TaskResult`` sentence) left out, for sums, maxima and charts."""
    return [point.value for point in points if not isinstance(point.value, str)]


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A point as ``POST /api/metrics`` answers it (exactly one of ``run_id`` and ``pod_name``)."""

    name: str
    date: dt.datetime
    value: MetricValue
    cumulative: bool
    metadata: str
    run_id: int | None = None
    pod_name: str | None = None


@dataclass(frozen=True, slots=True)
class NewPoint:
    """A point to post in a batch; the fields of ``Client.post_metric``."""

    name: str
    value: float | str
    run_id: int | None = None
    pod_name: str | None = None
    date: DateLike | None = None
    cumulative: bool = False
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class Run:
    """A run. The seed guarantees the first six fields; the rest are ``None`` when a server
    leaves them out. ``raw`` is the whole JSON object, extra fields included."""

    id: int
    name: str
    created_at: dt.datetime
    state: str
    job_id: str
    job_metadata: dict[str, Any] = field(hash=False)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    num_workers: int | None = None
    num_cpus: float | None = None
    max_bandwidth: float | None = None
    benchmark: str | None = None
    backend: str | None = None
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    time_limit_s: float | None = None
    start_timeout_s: float | None = None
    command: list[str] | None = field(default=None, hash=False)
    working_dir: str | None = None
    gpu: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_queued(self) -> bool:
        return self.state == RunState.QUEUED

    @property
    def has_ended(self) -> bool:
        return self.state in END_STATES


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A task a run can name (``GET /api/benchmarks``), or a plugin that failed to load
    (``status == "broken"``, with the ``error``)."""

    name: str
    status: str
    source: str
    builtin: bool
    description: str
    defaults: dict[str, Any] = field(hash=False)
    options: dict[str, Any] = field(hash=False)  # JSON Schema
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """``GET /api/health``: ``status`` is ``ok``, or ``degraded`` when the database is down."""

    status: str
    database: str
    backend: str
    version: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


PodSeries = dict[str, list[Point]]
RunSeries = dict[str, list[RunPoint]]


# -- parsing ---------------------------------------------------------------------------------------
def parse_date(text: str) -> dt.datetime:
    """An API date (``2018-08-03T09:21:38.594282Z``) as an aware UTC datetime."""
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _optional_date(value: Any) -> dt.datetime | None:
    return None if value is None else parse_date(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_run(data: Mapping[str, Any]) -> Run:
    return Run(
        id=int(data["id"]),
        name=str(data["name"]),
        created_at=parse_date(data["created_at"]),
        state=str(data["state"]),
        job_id=str(data["job_id"]),
        job_metadata=dict(data.get("job_metadata") or {}),
        started_at=_optional_date(data.get("started_at")),
        finished_at=_optional_date(data.get("finished_at")),
        num_workers=None if data.get("num_workers") is None else int(data["num_workers"]),
        num_cpus=_optional_float(data.get("num_cpus")),
        max_bandwidth=_optional_float(data.get("max_bandwidth")),
        benchmark=data.get("benchmark"),
        backend=data.get("backend"),
        options=dict(data.get("options") or {}),
        time_limit_s=_optional_float(data.get("time_limit_s")),
        start_timeout_s=_optional_float(data.get("start_timeout_s")),
        command=None if data.get("command") is None else [str(a) for a in data["command"]],
        working_dir=data.get("working_dir"),
        gpu=None if data.get("gpu") is None else bool(data["gpu"]),
        raw=dict(data),
    )


def parse_benchmark(data: Mapping[str, Any]) -> Benchmark:
    return Benchmark(
        name=str(data["name"]),
        status=str(data.get("status", "ok")),
        source=str(data.get("source", "")),
        builtin=bool(data.get("builtin", False)),
        description=str(data.get("description", "")),
        defaults=dict(data.get("defaults") or {}),
        options=dict(data.get("options") or {}),
        error=data.get("error"),
    )


def parse_pod_series(data: Mapping[str, Any]) -> PodSeries:
    return {
        name: [Point(parse_date(p["date"]), parse_value(str(p["value"]))) for p in points]
        for name, points in data.items()
    }


def parse_run_series(data: Mapping[str, Any]) -> RunSeries:
    return {
        name: [
            RunPoint(
                parse_date(p["date"]),
                parse_value(str(p["value"])),
                bool(p["cumulative"]),
                str(p["metadata"]),
            )
            for p in points
        ]
        for name, points in data.items()
    }


def parse_stored_point(data: Mapping[str, Any]) -> StoredPoint:
    return StoredPoint(
        name=str(data["name"]),
        date=parse_date(data["date"]),
        value=parse_value(str(data["value"])),
        cumulative=bool(data["cumulative"]),
        metadata=str(data["metadata"]),
        run_id=None if data.get("run_id") is None else int(data["run_id"]),
        pod_name=data.get("pod_name"),
    )


def parse_health(data: Mapping[str, Any]) -> Health:
    return Health(
        status=str(data["status"]),
        database=str(data["database"]),
        backend=str(data["backend"]),
        version=str(data["version"]),
    )
