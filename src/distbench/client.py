"""A typed, synchronous client for the distbench REST API (SPEC.md), built on httpx.

Answers come back as frozen dataclasses with aware UTC datetimes and float values; error answers
come back as the same ``distbench.errors`` exceptions the server raised, so code on both sides of
the wire catches the same classes::

    with Client("http://127.0.0.1:8000", token="s3cret") as client:
        run = client.start_run(name="demo", num_workers=2)
        run = client.wait_for_run(run.id, timeout_s=600)
        accuracy = client.run_metrics(run.id, metric_filter="accuracy")
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from distbench.errors import ERROR_BY_CODE, DistbenchError, InvalidInput
from distbench.timefmt import format_dt

T = TypeVar("T")

RUN_STATES = frozenset({"INITIALIZED", "STARTED", "FINISHED", "FAILED", "ABORTED"})
ACTIVE_STATES = frozenset({"INITIALIZED", "STARTED"})
END_STATES = frozenset({"FINISHED", "FAILED", "ABORTED"})

ExportFormat = Literal["json", "csv", "zip"]
DateLike = dt.datetime | str


# -- errors only the client raises ---------------------------------------------------------------
class ServerUnreachable(DistbenchError):
    """No HTTP answer: connection refused, DNS failure, timeout. The message names the URL.

    ``status_code`` is 503, what a proxy would answer; no status came from the server."""

    code = "server_unreachable"

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, details={"url": url})
        self.url = url

    @property
    def status_code(self) -> int:
        return 503


class ApiError(DistbenchError):
    """An answer this client cannot map to a ``distbench.errors`` class: an error code it does not
    know, or a body that is not the API's (a proxy's HTML page, a truncated answer).

    ``error_code`` is the server's code (``"unexpected_response"`` when there was none) and
    ``status_code`` the HTTP status actually received."""

    code = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_code: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self._status_code = status_code
        self.error_code = error_code

    @property
    def status_code(self) -> int:
        return self._status_code


class RunWaitTimeout(DistbenchError):
    """``wait_for_run`` gave up; ``run`` is the run as last seen. ``status_code`` is 504."""

    code = "wait_timeout"

    def __init__(self, message: str, *, run: Run) -> None:
        super().__init__(message, details={"run_id": run.id, "state": run.state})
        self.run = run

    @property
    def status_code(self) -> int:
        return 504


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
    value: float


@dataclass(frozen=True, slots=True)
class RunPoint:
    """One point of a run's series."""

    date: dt.datetime
    value: float
    cumulative: bool
    metadata: str


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A point as ``POST /api/metrics`` answers it (exactly one of ``run_id`` and ``pod_name``)."""

    name: str
    date: dt.datetime
    value: float
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
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

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


def _run(data: Mapping[str, Any]) -> Run:
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
        raw=dict(data),
    )


def _benchmark(data: Mapping[str, Any]) -> Benchmark:
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


def _pod_series(data: Mapping[str, Any]) -> PodSeries:
    return {
        name: [Point(parse_date(p["date"]), float(p["value"])) for p in points]
        for name, points in data.items()
    }


def _run_series(data: Mapping[str, Any]) -> RunSeries:
    return {
        name: [
            RunPoint(
                parse_date(p["date"]), float(p["value"]), bool(p["cumulative"]), str(p["metadata"])
            )
            for p in points
        ]
        for name, points in data.items()
    }


def _stored_point(data: Mapping[str, Any]) -> StoredPoint:
    return StoredPoint(
        name=str(data["name"]),
        date=parse_date(data["date"]),
        value=float(data["value"]),
        cumulative=bool(data["cumulative"]),
        metadata=str(data["metadata"]),
        run_id=None if data.get("run_id") is None else int(data["run_id"]),
        pod_name=data.get("pod_name"),
    )


def _health(data: Mapping[str, Any]) -> Health:
    return Health(
        status=str(data["status"]),
        database=str(data["database"]),
        backend=str(data["backend"]),
        version=str(data["version"]),
    )


# -- encoding --------------------------------------------------------------------------------------
def _date_text(value: DateLike) -> str:
    # A naive datetime is UTC, as the server reads it (SPEC.md).
    return format_dt(value) if isinstance(value, dt.datetime) else value


def _value_text(value: float | str) -> str:
    """Values travel as strings: JSON has no NaN or infinity, and training diverges."""
    if isinstance(value, bool):
        raise TypeError("a metric value must be a number or a string holding one, not a bool")
    if isinstance(value, str):
        return value
    number = float(value)
    return "nan" if math.isnan(number) else repr(number)


def _point_body(point: NewPoint) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": point.name,
        "value": _value_text(point.value),
        "cumulative": point.cumulative,
        "metadata": point.metadata,
    }
    if point.run_id is not None:
        body["run_id"] = point.run_id
    if point.pod_name is not None:
        body["pod_name"] = point.pod_name
    if point.date is not None:
        body["date"] = _date_text(point.date)
    return body


def _series_params(
    since: DateLike | None,
    metric_filter: str | None,
    last_n: int | None,
    max_points: int | None,
) -> dict[str, str | int]:
    params: dict[str, str | int] = {}
    if since is not None:
        params["since"] = _date_text(since)
    if metric_filter is not None:
        params["metric_filter"] = metric_filter
    if last_n is not None:
        params["last_n"] = last_n
    if max_points is not None:
        params["max_points"] = max_points
    return params


def _segment(text: str) -> str:
    return quote(text, safe="")


# -- the client ------------------------------------------------------------------------------------
class Client:
    """The distbench API at ``base_url`` (e.g. ``http://127.0.0.1:8000``).

    ``token`` is sent as ``Authorization: Bearer <token>`` on every request (the server needs it on
    writes when it was started with one). ``timeout`` applies to the httpx client this creates; a
    client passed as ``http`` keeps its own settings and is not closed by ``close()``.

    Every method raises the ``distbench.errors`` class of the server's error code (``NotFound``,
    ``RunActive``, ...), ``ApiError`` for an answer it cannot map, and ``ServerUnreachable`` when
    no answer arrives.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30,
        http: httpx.Client | None = None,
    ) -> None:
        if "://" not in base_url:
            raise InvalidInput(
                f"server URL {base_url!r} has no scheme: use e.g. http://127.0.0.1:8000"
            )
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (unless the httpx client was passed in)."""
        if self._owns_http:
            self._http.close()

    # -- transport ------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        ok_statuses: Collection[int] = (),
    ) -> httpx.Response:
        url = self.base_url + path
        try:
            response = self._http.request(
                method, url, params=params, json=json, headers=self._headers
            )
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(
                f"no answer from the distbench server at {url} in time ({type(exc).__name__})",
                url=url,
            ) from exc
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"cannot reach the distbench server at {url}: {str(exc) or type(exc).__name__}",
                url=url,
            ) from exc
        if not response.is_success and response.status_code not in ok_statuses:
            raise _error_of(response)
        return response

    def _json(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        ok_statuses: Collection[int] = (),
    ) -> T:
        response = self._send(method, path, params=params, json=json, ok_statuses=ok_statuses)
        try:
            return parse(response.json())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ApiError(
                f"unexpected answer from {response.request.url} (HTTP {response.status_code}): "
                f"{exc!r}; is this a distbench server of the same version?",
                status_code=response.status_code,
                error_code="unexpected_response",
            ) from exc

    # -- pods -----------------------------------------------------------------------------------
    def pods(self) -> list[Pod]:
        """Every worker pod that exists now (``GET /api/pods/``)."""
        return self._json(
            "GET",
            "/api/pods/",
            lambda data: [Pod(p["name"], p["labels"], p["phase"], p["ip"]) for p in data],
        )

    # -- metrics --------------------------------------------------------------------------------
    def all_pod_metrics(
        self,
        *,
        since: DateLike | None = None,
        metric_filter: str | None = None,
        last_n: int | None = None,
        max_points: int | None = None,
    ) -> dict[str, PodSeries]:
        """Resource series of every pod, past and present: ``{pod: {metric: [Point]}}``.

        ``since`` keeps points strictly newer than it; ``metric_filter`` one metric name;
        ``last_n`` each series' newest points; ``max_points`` downsamples keeping extremes."""
        params = _series_params(since, metric_filter, last_n, max_points)
        return self._json(
            "GET",
            "/api/metrics/",
            lambda data: {pod: _pod_series(series) for pod, series in data.items()},
            params=params,
        )

    def pod_metrics(
        self,
        pod_name: str,
        *,
        since: DateLike | None = None,
        metric_filter: str | None = None,
        last_n: int | None = None,
        max_points: int | None = None,
    ) -> PodSeries:
        """One pod's resource series, ``{metric: [Point]}``; filters as in ``all_pod_metrics``.
        Raises ``NotFound`` for a pod the server never had."""
        params = _series_params(since, metric_filter, last_n, max_points)
        params["metric_type"] = "pod"
        return self._json("GET", f"/api/metrics/{_segment(pod_name)}/", _pod_series, params=params)

    def run_metrics(
        self,
        run_id: int,
        *,
        since: DateLike | None = None,
        metric_filter: str | None = None,
        last_n: int | None = None,
        max_points: int | None = None,
    ) -> RunSeries:
        """One run's series, ``{metric: [RunPoint]}``; filters as in ``all_pod_metrics``.
        Raises ``NotFound`` for an unknown run."""
        params = _series_params(since, metric_filter, last_n, max_points)
        params["metric_type"] = "run"
        return self._json("GET", f"/api/metrics/{run_id}/", _run_series, params=params)

    def post_metric(
        self,
        *,
        name: str,
        value: float | str,
        run_id: int | None = None,
        pod_name: str | None = None,
        date: DateLike | None = None,
        cumulative: bool = False,
        metadata: str = "",
    ) -> StoredPoint:
        """Save one point of a run (``run_id``) or a pod (``pod_name``): exactly one of the two.

        ``value`` may be ``nan`` or infinite; ``date`` defaults to the server's now (a naive
        datetime is UTC). Raises ``NotFound`` for an unknown run or pod."""
        point = NewPoint(
            name=name,
            value=value,
            run_id=run_id,
            pod_name=pod_name,
            date=date,
            cumulative=cumulative,
            metadata=metadata,
        )
        return self._json("POST", "/api/metrics", _stored_point, json=_point_body(point))

    def post_metrics(self, points: Sequence[NewPoint | Mapping[str, Any]]) -> int:
        """Save many points atomically (``POST /api/metrics/batch``): all are stored, or none and
        an error. A mapping holds ``NewPoint``'s fields. Returns the number stored."""
        body = [_point_body(p if isinstance(p, NewPoint) else NewPoint(**p)) for p in points]
        return self._json("POST", "/api/metrics/batch", lambda data: int(data["stored"]), json=body)

    def benchmarks(self) -> list[Benchmark]:
        """The tasks a run can name, with their options; broken plugins too, with the error."""
        return self._json("GET", "/api/benchmarks", lambda data: [_benchmark(b) for b in data])

    # -- runs -----------------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        """All runs, newest first."""
        return self._json("GET", "/api/runs/", lambda data: [_run(r) for r in data])

    def run(self, run_id: int) -> Run:
        """One run; ``NotFound`` if there is none with this id."""
        return self._json("GET", f"/api/runs/{run_id}/", _run)

    def start_run(
        self,
        *,
        name: str,
        num_workers: int,
        num_cpus: float = 1.0,
        max_bandwidth: float | None = None,
        benchmark: str | None = None,
        backend: str | None = None,
        time_limit_s: float | None = None,
        start_timeout_s: float | None = None,
        options: Mapping[str, Any] | None = None,
        command: Sequence[str] | None = None,
        working_dir: str | None = None,
    ) -> Run:
        """Start a run of ``num_workers`` workers with ``num_cpus`` cores and ``max_bandwidth``
        Mbit/s of egress each. Arguments left ``None`` take the server's defaults. ``command``
        (an argv, run in ``working_dir``) replaces the benchmark task; the server must allow it.

        Raises ``RunActive`` while another run is active, ``LimitUnsupported`` for a limit the
        backend cannot enforce, ``InvalidInput`` for bad values."""
        body: dict[str, Any] = {"name": name, "num_workers": num_workers, "num_cpus": num_cpus}
        optional = {
            "max_bandwidth": max_bandwidth,
            "benchmark": benchmark,
            "backend": backend,
            "time_limit_s": time_limit_s,
            "start_timeout_s": start_timeout_s,
            "options": None if options is None else dict(options),
            "command": None if command is None else list(command),
            "working_dir": working_dir,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return self._json("POST", "/api/runs/", _run, json=body)

    def abort_run(self, run_id: int) -> Run:
        """Stop a run's workers and mark it ABORTED (its data is kept). An ended run comes back
        unchanged."""
        return self._json("DELETE", f"/api/runs/{run_id}/", _run)

    def run_logs(self, run_id: int, tail: int | None = None) -> dict[str, str]:
        """Each worker's stdout and stderr by pod name; ``tail`` keeps the last lines only."""
        params: dict[str, str | int] = {} if tail is None else {"tail": tail}
        return self._json(
            "GET",
            f"/api/runs/{run_id}/logs",
            lambda data: {str(pod): str(text) for pod, text in data["logs"].items()},
            params=params,
        )

    def export_run(
        self,
        run_id: int,
        fmt: ExportFormat,
        *,
        since: DateLike | None = None,
        metric_filter: str | None = None,
        last_n: int | None = None,
        max_points: int | None = None,
    ) -> bytes:
        """A run's series as a file: ``json``, ``csv``, or a ``zip`` laid out as MLBench's (one
        JSON file per metric and per pod metric, ``official_result.txt``, ``run.json``)."""
        params = _series_params(since, metric_filter, last_n, max_points)
        params.update(metric_type="run", format=fmt)
        return self._send("GET", f"/api/metrics/{run_id}/", params=params).content

    def export_pod(self, pod_name: str, fmt: ExportFormat) -> bytes:
        """A pod's resource series as a ``json``, ``csv`` or ``zip`` file."""
        params: dict[str, str | int] = {"metric_type": "pod", "format": fmt}
        return self._send("GET", f"/api/metrics/{_segment(pod_name)}/", params=params).content

    def wait_for_run(
        self,
        run_id: int,
        *,
        timeout_s: float,
        poll_s: float = 0.5,
        until: Collection[str] = END_STATES,
    ) -> Run:
        """Poll the run until its state is one of ``until`` (default: any end state) and return
        it; ``RunWaitTimeout`` (holding the run as last seen) after ``timeout_s``."""
        unknown = set(until) - RUN_STATES
        if unknown or not until:
            raise ValueError(f"until must name run states out of {sorted(RUN_STATES)}")
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.run(run_id)
            if run.state in until:
                return run
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise RunWaitTimeout(
                    f"run {run_id} is still {run.state} after {timeout_s:g} s "
                    f"(waited for {' or '.join(sorted(until))})",
                    run=run,
                )
            time.sleep(min(poll_s, remaining_s))

    # -- operations -----------------------------------------------------------------------------
    def health(self) -> Health:
        """The server's health; ``DatabaseUnavailable`` (503) when its database is down, with
        the health facts in ``details``."""
        return self._json("GET", "/api/health", _health)

    def prometheus_metrics(self) -> str:
        """The Prometheus text the server exposes at ``GET /metrics``."""
        return self._send("GET", "/metrics").text

    def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI document."""
        return self._json("GET", "/openapi.json", dict)


def _error_of(response: httpx.Response) -> DistbenchError:
    """The exception the server raised, rebuilt from the one error body of SPEC.md."""
    status = response.status_code
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details") or {}
        if not isinstance(details, dict):
            details = {"details": details}
    except (ValueError, KeyError, TypeError):
        snippet = " ".join(response.text.split())[:200]
        return ApiError(
            f"HTTP {status} from {response.request.url} without a distbench error body: "
            f"{snippet or '(empty)'}",
            status_code=status,
            error_code="unexpected_response",
        )
    cls = ERROR_BY_CODE.get(code)
    if cls is not None:
        return cls(message, details=details)
    return ApiError(message, status_code=status, error_code=code, details=details)


__all__ = [
    "ACTIVE_STATES",
    "END_STATES",
    "RUN_STATES",
    "ApiError",
    "Benchmark",
    "Client",
    "ExportFormat",
    "Health",
    "NewPoint",
    "Pod",
    "PodSeries",
    "Point",
    "Run",
    "RunPoint",
    "RunSeries",
    "RunWaitTimeout",
    "ServerUnreachable",
    "StoredPoint",
    "parse_date",
]
