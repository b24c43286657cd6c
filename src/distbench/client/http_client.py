"""The client's calls; import them, its records and its errors from ``distbench.client``."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from distbench.client.errors import (
    ApiError,
    RunWaitTimeout,
    ServerUnreachable,
    error_from_response,
)
from distbench.client.records import (
    END_STATES,
    RUN_STATES,
    Benchmark,
    DateLike,
    Health,
    NewPoint,
    Pod,
    PodSeries,
    Run,
    RunSeries,
    StoredPoint,
    parse_benchmark,
    parse_health,
    parse_pod_series,
    parse_run,
    parse_run_series,
    parse_stored_point,
)
from distbench.errors import InvalidInput
from distbench.metric_value import value_text
from distbench.timefmt import format_dt

T = TypeVar("T")

ExportFormat = Literal["json", "csv", "zip"]


# -- encoding --------------------------------------------------------------------------------------
def _date_text(value: DateLike) -> str:
    # A naive datetime is UTC, as the server reads it (docs/api.md).
    return format_dt(value) if isinstance(value, dt.datetime) else value


def _value_text(value: float | str) -> str:
    """Values travel as strings: JSON has no NaN or infinity, and training diverges."""
    if isinstance(value, bool):
        raise TypeError("a metric value must be a number or text, not a bool")
    # float(): an int (or a numpy number) is sent as the float the server stores.
    return value_text(value if isinstance(value, str) else float(value))


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
            raise error_from_response(response)
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
            lambda data: {pod: parse_pod_series(series) for pod, series in data.items()},
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
        return self._json(
            "GET", f"/api/metrics/{_segment(pod_name)}/", parse_pod_series, params=params
        )

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
        return self._json("GET", f"/api/metrics/{run_id}/", parse_run_series, params=params)

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
        """Save one point of a run (``run_id``) or a pod (``pod_name``); with both, the
        server stores the pod's point (as the seed's example does).

        ``value`` may be ``nan`` or infinite, or text that is not a number (the server keeps it
        as text, as MLBench's ``TaskResult`` sentence); ``date`` defaults to the server's now
        (a naive datetime is UTC). Raises ``NotFound`` for an unknown run or pod."""
        point = NewPoint(
            name=name,
            value=value,
            run_id=run_id,
            pod_name=pod_name,
            date=date,
            cumulative=cumulative,
            metadata=metadata,
        )
        return self._json("POST", "/api/metrics", parse_stored_point, json=_point_body(point))

    def post_metrics(self, points: Sequence[NewPoint | Mapping[str, Any]]) -> int:
        """Save many points atomically (``POST /api/metrics/batch``): all are stored, or none and
        an error. A mapping holds ``NewPoint``'s fields. Returns the number stored."""
        body = [_point_body(p if isinstance(p, NewPoint) else NewPoint(**p)) for p in points]
        return self._json("POST", "/api/metrics/batch", lambda data: int(data["stored"]), json=body)

    def benchmarks(self) -> list[Benchmark]:
        """The tasks a run can name, with their options; broken plugins too, with the error."""
        return self._json("GET", "/api/benchmarks", lambda data: [parse_benchmark(b) for b in data])

    # -- runs -----------------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        """All runs, newest first."""
        return self._json("GET", "/api/runs/", lambda data: [parse_run(r) for r in data])

    def run(self, run_id: int) -> Run:
        """One run; ``NotFound`` if there is none with this id."""
        return self._json("GET", f"/api/runs/{run_id}/", parse_run)

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
        queue: bool | None = None,
    ) -> Run:
        """Start a run of ``num_workers`` workers with ``num_cpus`` cores and ``max_bandwidth``
        Mbit/s of egress each. Arguments left ``None`` take the server's defaults. ``command``
        (an argv, run in ``working_dir``) replaces the benchmark task; the server must allow it.

        With ``queue=True`` a run posted while another is active or queued comes back QUEUED
        and the server starts it in turn; ``None`` leaves it to the server (``--queue-runs``).

        Raises ``RunActive`` while another run is active or queued (unless it queues),
        ``LimitUnsupported`` for a limit the backend cannot enforce, ``InvalidInput`` for bad
        values."""
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
            "queue": queue,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return self._json("POST", "/api/runs/", parse_run, json=body)

    def abort_run(self, run_id: int) -> Run:
        """Stop a run's workers and mark it ABORTED (its data is kept). An ended run comes back
        unchanged."""
        return self._json("DELETE", f"/api/runs/{run_id}/", parse_run)

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
        return self._json("GET", "/api/health", parse_health)

    def prometheus_metrics(self) -> str:
        """The Prometheus text the server exposes at ``GET /metrics``."""
        return self._send("GET", "/metrics").text

    def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI document."""
        return self._json("GET", "/openapi.json", dict)
