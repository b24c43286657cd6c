"""Every error leaves the server in one shape (docs/api.md): a walk of every endpoint with bad
input, unknown ids, unknown paths and wrong methods, each answered with the right 4xx,
``application/json; charset=utf-8`` and exactly ``{"error": {"code", "message", "details"},
"message"}`` (the top-level message, the same text, is what MLBench's CLI reads), a message that
names what to fix, and nothing written. Each row runs on both slash forms."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from distbench.settings import Settings
from distbench.store import schema
from distbench.store.engine import create_engine
from tests.api.helpers import (
    active_run,
    assert_error,
    client,
    get_run,
    run_series,
    start_run,
    wait_for_state,
)
from tests.conftest import RunningServer, ServerThread, StartServer, _fresh_postgres, free_port
from tests.fake_backend import FakeBackend

# An id int() refuses to read (over 4,300 digits) and digits str.isdigit admits but int() does
# not ("²"): both were 500s, before any lookup.
NINES = "9" * 5000
SUPERSCRIPT_TWO = "%C2%B2"
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_BATCH_POINTS = 10_000
# The metric name of every point the walk sends; the state check reads it back (a pod's own
# resource series grow all the time, so the check reads this name only).
PROBE = "error-shape-probe"


@contextmanager
def serving(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    """A real server on a fresh database, for a whole module: conftest's ``server`` is one per
    test, and the walk has hundreds of rows that write nothing (each row checks so)."""
    with ExitStack() as stack:
        if database == "sqlite":
            url = f"sqlite:///{tmp_path / 'distbench.db'}"
        else:
            admin_url = request.getfixturevalue("postgres_admin_url")
            url = stack.enter_context(contextmanager(_fresh_postgres)(admin_url))
        engine = create_engine(url)
        try:
            schema.upgrade(engine)
        finally:
            engine.dispose()
        settings = Settings(
            host="127.0.0.1",
            port=free_port(),
            database_url=url,
            data_dir=tmp_path / "data",
            collect_interval_s=0.2,
        )
        backend = FakeBackend(release=settings.release)
        thread = stack.enter_context(ServerThread(settings, backend))
        yield RunningServer(
            url=f"http://127.0.0.1:{settings.port}",
            settings=settings,
            backend=backend,
            app=thread.app,
        )


@dataclass(frozen=True)
class World:
    """What exists on the walk's server: one ended run with pods and points, no active run."""

    server: RunningServer
    run_id: int
    pod: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with serving(request.param, tmp_path_factory.mktemp(request.param), request) as server:
        with client(server) as http:
            run = active_run(http, name="walked", num_workers=2)
            response = http.post(
                "/api/metrics/batch",
                json=[{"run_id": run["id"], "name": PROBE, "value": 0.5}],
            )
            assert response.status_code == 201, response.text
            server.fake.finish(run["id"])
            wait_for_state(http, run["id"], "FINISHED")
        yield World(server=server, run_id=run["id"], pod=run["job_metadata"]["pods"][0])


@pytest.fixture
def http(world: World) -> Iterator[httpx.Client]:
    with client(world.server) as http:
        yield http


# -- the walk ----------------------------------------------------------------------------------

INVALID, MALFORMED, NOT_FOUND = "invalid_input", "malformed_body", "not_found"
NOT_ALLOWED, TOO_LARGE = "method_not_allowed", "body_too_large"


@dataclass(frozen=True)
class Bad:
    method: str
    path: str  # as documented; {run} and {pod} name the world's run and pod
    status: int
    code: str
    mentions: tuple[str, ...]
    # httpx keyword arguments: json=, content= (bytes, or a function making a stream), data=
    send: dict[str, Any] = field(default_factory=dict)


def bad(
    name: str,
    method: str,
    path: str,
    status: int,
    code: str,
    mentions: str | tuple[str, ...] = (),
    **send: Any,
) -> Any:
    mentions = (mentions,) if isinstance(mentions, str) else mentions
    route = path.partition("?")[0]
    route = route if len(route) <= 60 else route[:40] + "…"  # a test id, not 5,000 nines
    return pytest.param(
        Bad(method, path, status, code, mentions, send), id=f"{method} {route} {name}"
    )


def on(method: str, path: str) -> Callable[..., Any]:
    """Rows of one endpoint: ``on("POST", "/api/runs/")("name 0 chars", 400, ...)``."""

    def row(
        name: str, status: int, code: str, mentions: str | tuple[str, ...] = (), **send: Any
    ) -> Any:
        return bad(name, method, path, status, code, mentions, **send)

    return row


def point(**fields: Any) -> dict[str, Any]:
    """A metric point that is valid but for ``fields``. Run 1 may or may not exist: bad input is
    refused before any lookup, and the state check catches a point that got through."""
    return {"run_id": 1, "name": PROBE, "value": 0.5, **fields}


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


RUN = {"name": "a run", "num_workers": 1}
FORM_RUN = {"name": "a run", "num_workers": "1"}
FORM_POINT = {"run_id": "1", "name": PROBE, "value": "0.5"}
POD_POINT = without(point(pod_name="{pod}"), "run_id")
OVERSIZED = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'"}'
TOO_MANY_POINTS = json.dumps([point()] * (MAX_BATCH_POINTS + 1)).encode()


def streamed_oversized() -> Iterator[bytes]:
    """Over the limit without a Content-Length (chunked), so only counting the bytes catches it."""
    chunk = b" " * 65_536
    for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
        yield chunk
    yield b"{}"


PODS = [
    bad("wrong method", "POST", "/api/pods/", 405, NOT_ALLOWED, "method"),
    bad("wrong method", "PUT", "/api/pods/", 405, NOT_ALLOWED, "method"),
    bad("wrong method", "DELETE", "/api/pods/", 405, NOT_ALLOWED, "method"),
]

ALL = "/api/metrics/"
ONE = "/api/metrics/{pod}/"
RUNS = "/api/metrics/{run}/?metric_type=run&"
METRICS_READ = [
    bad("since=garbage", "GET", ALL + "?since=garbage", 400, INVALID, "since"),
    bad("since=yesterday", "GET", ALL + "?since=yesterday", 400, INVALID, "since"),
    bad("since month 13", "GET", ALL + "?since=2018-13-03T09:21:38Z", 400, INVALID, "since"),
    bad("max_points=0", "GET", ALL + "?max_points=0", 400, INVALID, "max_points"),
    bad("max_points=many", "GET", ALL + "?max_points=many", 400, INVALID, "max_points"),
    bad("last_n=-1", "GET", ALL + "?last_n=-1", 400, INVALID, "last_n"),
    bad("last_n=1.5", "GET", ALL + "?last_n=1.5", 400, INVALID, "last_n"),
    bad("metric_filter NUL", "GET", ALL + "?metric_filter=%00", 400, INVALID, "metric_filter"),
    bad("unknown pod", "GET", "/api/metrics/no-such-pod/", 404, NOT_FOUND, "no-such-pod"),
    bad("pod name NUL", "GET", "/api/metrics/a%00b/", 400, INVALID, ("pod_name_or_run_id", "NUL")),
    bad("metric_type=bogus", "GET", ONE + "?metric_type=bogus", 400, INVALID, "metric_type"),
    bad("unknown run", "GET", "/api/metrics/999999/?metric_type=run", 404, NOT_FOUND, "999999"),
    bad("run id abc", "GET", "/api/metrics/abc/?metric_type=run", 400, INVALID, "abc"),
    bad("run id 0", "GET", "/api/metrics/0/?metric_type=run", 400, INVALID, "run id"),
    bad("run id ²", "GET", f"/api/metrics/{SUPERSCRIPT_TWO}/?metric_type=run", 400, INVALID, "²"),
    bad(
        "run id 1²", "GET", f"/api/metrics/1{SUPERSCRIPT_TWO}/?metric_type=run", 400, INVALID, "1²"
    ),
    bad("run id Arabic 12", "GET", "/api/metrics/%D9%A1%D9%A2/?metric_type=run", 400, INVALID),
    bad("run id 2**31", "GET", f"/api/metrics/{2**31}/?metric_type=run", 400, INVALID, "run id"),
    bad("run id 5000 nines", "GET", f"/api/metrics/{NINES}/?metric_type=run", 400, INVALID),
    bad("run since=garbage", "GET", RUNS + "since=garbage", 400, INVALID, "since"),
    bad("run max_points=0", "GET", RUNS + "max_points=0", 400, INVALID, "max_points"),
    bad("run last_n=-1", "GET", RUNS + "last_n=-1", 400, INVALID, "last_n"),
    bad("format=pdf", "GET", RUNS + "format=pdf", 400, INVALID, "format"),
    bad("wrong method", "DELETE", ALL, 405, NOT_ALLOWED, "method"),
    bad("wrong method", "PUT", "/api/metrics", 405, NOT_ALLOWED, "method"),
    bad("wrong method", "DELETE", ONE, 405, NOT_ALLOWED, "method"),
]

post = on("POST", "/api/metrics")
METRIC_POST = [
    post("malformed JSON", 400, MALFORMED, "JSON", content=b'{"name": '),
    post("empty body", 400, MALFORMED, "empty", content=b""),
    post("JSON array", 400, INVALID, "JSON object", json=[point()]),
    post("JSON null", 400, INVALID, "JSON object", content=b"null"),
    post("JSON string", 400, INVALID, "JSON object", json="0.5"),
    post("missing name", 400, INVALID, "name", json=without(point(), "name")),
    post("missing value", 400, INVALID, "value", json=without(point(), "value")),
    post("empty name", 400, INVALID, "name", json=point(name="")),
    post("name 201 chars", 400, INVALID, "name", json=point(name="n" * 201)),
    post("name a number", 400, INVALID, "name", json=point(name=7)),
    post("name with NUL", 400, INVALID, ("name", "NUL"), json=point(name="a\x00")),
    # Text that is not a number is stored as text (MLBench's TaskResult), within limits.
    post("value empty", 400, INVALID, "value", json=point(value="")),
    post("value blank", 400, INVALID, ("value", "empty"), json=point(value=" \t")),
    post("value text NUL", 400, INVALID, ("value", "NUL"), json=point(value="ok\x00")),
    post("value text 10,001", 400, INVALID, ("value", "10000"), json=point(value="x" * 10_001)),
    post("value true", 400, INVALID, ("value", "boolean"), json=point(value=True)),
    post("value false", 400, INVALID, ("value", "boolean"), json=point(value=False)),
    post("value null", 400, INVALID, "value", json=point(value=None)),
    post("value a list", 400, INVALID, "value", json=point(value=[1])),
    post("value an object", 400, INVALID, "value", json=point(value={})),
    post("run_id abc", 400, INVALID, "run_id", json=point(run_id="abc")),
    post("run_id 0", 400, INVALID, "run_id", json=point(run_id=0)),
    post("run_id 1.5", 400, INVALID, "run_id", json=point(run_id=1.5)),
    post("run_id 2**31", 400, INVALID, "run_id", json=point(run_id=2**31)),
    post("run_id true", 400, INVALID, ("run_id", "boolean"), json=point(run_id=True)),
    post("run_id false", 400, INVALID, ("run_id", "boolean"), json=point(run_id=False)),
    post("pod_name empty", 400, INVALID, "pod_name", json=point(run_id=None, pod_name="")),
    post("cumulative maybe", 400, INVALID, "cumulative", json=point(cumulative="maybe")),
    post("metadata a number", 400, INVALID, "metadata", json=point(metadata=5)),
    post("metadata NUL", 400, INVALID, "metadata", json=point(metadata="\x00")),
    post("date yesterday", 400, INVALID, "date", json=point(date="yesterday")),
    post("date month 13", 400, INVALID, "date", json=point(date="2018-13-03T09:21:38Z")),
    post("date < year 1 UTC", 400, INVALID, "date", json=point(date="0001-01-01T00:00:00+01:00")),
    post("date > 9999 UTC", 400, INVALID, "date", json=point(date="9999-12-31T23:59:59-01:00")),
    post("date a list", 400, INVALID, "date", json=point(date=[])),
    post("no owner", 400, INVALID, ("pod_name", "run_id"), json=without(point(), "run_id")),
    post("null owners", 400, INVALID, "pod_name", json=point(run_id=None, pod_name=None)),
    post("unknown run", 404, NOT_FOUND, "999999", json=point(run_id=999_999)),
    post(
        "unknown pod", 404, NOT_FOUND, "no-such-pod", json={**POD_POINT, "pod_name": "no-such-pod"}
    ),
    post("pod point value blank", 400, INVALID, "value", json={**POD_POINT, "value": " "}),
    post("form run_id abc", 400, INVALID, "run_id", data={**FORM_POINT, "run_id": "abc"}),
    post("form value blank", 400, INVALID, "value", data={**FORM_POINT, "value": " "}),
    post("form no owner", 400, INVALID, "pod_name", data=without(FORM_POINT, "run_id")),
    post(
        "form name %ff",
        400,
        MALFORMED,
        "UTF-8",
        content=b"run_id=1&name=%ff&value=0.5",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    post(
        "multipart name \\xff",
        400,
        MALFORMED,
        ("name", "UTF-8"),
        data={"run_id": "1", "value": "0.5"},
        files={"name": (None, b"\xff")},
    ),
    post(
        "JSON not UTF-8",
        400,
        MALFORMED,
        "UTF-8",
        content=b'{"run_id": 1, "name": "\xff", "value": 0.5}',
        headers={"Content-Type": "application/json"},
    ),
    post("over 4 MB", 413, TOO_LARGE, "bytes", content=OVERSIZED),
    post("over 4 MB streamed", 413, TOO_LARGE, "bytes", content=streamed_oversized),
]

batch = on("POST", "/api/metrics/batch")
BATCH_POST = [
    batch("malformed JSON", 400, MALFORMED, "JSON", content=b"[{"),
    batch("empty body", 400, MALFORMED, "empty", content=b""),
    batch("object not list", 400, INVALID, "list", json=point()),
    batch("list of numbers", 400, INVALID, "0", json=[1]),
    batch("one blank value", 400, INVALID, "1.value", json=[point(), point(value=" ")]),
    batch("one boolean value", 400, INVALID, "0.value", json=[point(value=True)]),
    batch("one boolean run_id", 400, INVALID, "1.run_id", json=[point(), point(run_id=True)]),
    batch("one bad date", 400, INVALID, "1.date", json=[point(), point(date="yesterday")]),
    batch("one without owner", 400, INVALID, "point 1", json=[point(), point(run_id=None)]),
    batch("one unknown run", 404, NOT_FOUND, "999999", json=[POD_POINT, point(run_id=999_999)]),
    batch("10,001 points", 413, TOO_LARGE, "10000", content=TOO_MANY_POINTS),
    batch("over 4 MB", 413, TOO_LARGE, "bytes", content=OVERSIZED),
    bad("wrong method", "PUT", "/api/metrics/batch", 405, NOT_ALLOWED, "method"),
]

start = on("POST", "/api/runs/")
RUN_POST = [
    start("malformed JSON", 400, MALFORMED, "JSON", content=b"{'name': 'x'}"),
    start("empty body", 400, MALFORMED, "empty", content=b""),
    start("JSON array", 400, INVALID, "JSON object", json=[RUN]),
    start("missing name", 400, INVALID, "name", json=without(RUN, "name")),
    start("missing num_workers", 400, INVALID, "num_workers", json=without(RUN, "num_workers")),
    start("name 0 chars", 400, INVALID, "name", json={**RUN, "name": ""}),
    start("name 101 chars", 400, INVALID, ("name", "100"), json={**RUN, "name": "r" * 101}),
    start("name a number", 400, INVALID, "name", json={**RUN, "name": 5}),
    start("name with NUL", 400, INVALID, ("name", "NUL"), json={**RUN, "name": "a\x00"}),
    start("num_workers=0", 400, INVALID, "num_workers", json={**RUN, "num_workers": 0}),
    start("num_workers=1.5", 400, INVALID, "num_workers", json={**RUN, "num_workers": 1.5}),
    start("num_workers=two", 400, INVALID, "num_workers", json={**RUN, "num_workers": "two"}),
    start("num_cpus=-1", 400, INVALID, "num_cpus", json={**RUN, "num_cpus": -1}),
    start("num_cpus=0", 400, INVALID, "num_cpus", json={**RUN, "num_cpus": 0}),
    start("num_cpus=many", 400, INVALID, "num_cpus", json={**RUN, "num_cpus": "many"}),
    start("max_bandwidth=0", 400, INVALID, "max_bandwidth", json={**RUN, "max_bandwidth": 0}),
    start("max_bandwidth=-5", 400, INVALID, "max_bandwidth", json={**RUN, "max_bandwidth": -5}),
    # tc sets whole kbit/s: 0.0001 Mbit/s rounded to "0kbit" and the run failed in tc.
    start(
        "max_bandwidth=0.0001",
        400,
        INVALID,
        ("max_bandwidth", "0.001"),
        json={**RUN, "max_bandwidth": 0.0001},
    ),
    start(
        "max_bandwidth=1e6",
        400,
        INVALID,
        ("max_bandwidth", "100000"),
        json={**RUN, "max_bandwidth": 1e6},
    ),
    start(
        "num_workers=true",
        400,
        INVALID,
        ("num_workers", "boolean"),
        json={**RUN, "num_workers": True},
    ),
    start("num_cpus=true", 400, INVALID, ("num_cpus", "boolean"), json={**RUN, "num_cpus": True}),
    start(
        "max_bandwidth=true",
        400,
        INVALID,
        ("max_bandwidth", "boolean"),
        json={**RUN, "max_bandwidth": True},
    ),
    start(
        "time_limit_s=true",
        400,
        INVALID,
        ("time_limit_s", "boolean"),
        json={**RUN, "time_limit_s": True},
    ),
    start(
        "start_timeout_s=true",
        400,
        INVALID,
        ("start_timeout_s", "boolean"),
        json={**RUN, "start_timeout_s": True},
    ),
    start("backend pigeon", 400, INVALID, "backend", json={**RUN, "backend": "pigeon"}),
    start("benchmark empty", 400, INVALID, "benchmark", json={**RUN, "benchmark": ""}),
    start("options a list", 400, INVALID, "options", json={**RUN, "options": []}),
    start("form num_workers=0", 400, INVALID, "num_workers", data={**FORM_RUN, "num_workers": "0"}),
    start(
        "multipart name \\xff",
        400,
        MALFORMED,
        ("name", "UTF-8"),
        data={"num_workers": "1"},
        files={"name": (None, b"\xff")},
    ),
    start(
        "form num_workers Arabic 1",
        400,
        INVALID,
        "num_workers",
        data={**FORM_RUN, "num_workers": "\u0661"},
    ),
    start(
        "form name %ff",
        400,
        MALFORMED,
        "UTF-8",
        content=b"name=%ff&num_workers=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    start("over 4 MB", 413, TOO_LARGE, "bytes", content=OVERSIZED),
    bad("wrong method", "PUT", "/api/runs/", 405, NOT_ALLOWED, "method"),
    bad("wrong method", "DELETE", "/api/runs/", 405, NOT_ALLOWED, "method"),
]

A_RUN = "/api/runs/{run}/"
ONE_RUN = [
    bad("id abc", "GET", "/api/runs/abc/", 400, INVALID, "run_id"),
    bad("id 0", "GET", "/api/runs/0/", 400, INVALID, "run_id"),
    bad("id over 2**31", "GET", "/api/runs/99999999999/", 400, INVALID, "run_id"),
    bad("id ²", "GET", f"/api/runs/{SUPERSCRIPT_TWO}/", 400, INVALID, "run_id"),
    bad("id 1²", "GET", f"/api/runs/1{SUPERSCRIPT_TWO}/", 400, INVALID, "run_id"),
    bad("id 5000 nines", "GET", f"/api/runs/{NINES}/", 400, INVALID, "run_id"),
    bad("abort id ²", "DELETE", f"/api/runs/{SUPERSCRIPT_TWO}/", 400, INVALID, "run_id"),
    bad("abort id 5000 nines", "DELETE", f"/api/runs/{NINES}/", 400, INVALID, "run_id"),
    bad("logs id 1²", "GET", f"/api/runs/1{SUPERSCRIPT_TWO}/logs", 400, INVALID, "run_id"),
    bad("logs id 5000 nines", "GET", f"/api/runs/{NINES}/logs", 400, INVALID, "run_id"),
    bad("unknown id", "GET", "/api/runs/999999/", 404, NOT_FOUND, "999999"),
    bad("abort unknown id", "DELETE", "/api/runs/999999/", 404, NOT_FOUND, "999999"),
    bad("abort id abc", "DELETE", "/api/runs/abc/", 400, INVALID, "run_id"),
    bad("wrong method", "POST", A_RUN, 405, NOT_ALLOWED, "method", json=RUN),
    bad("wrong method", "PUT", A_RUN, 405, NOT_ALLOWED, "method", json=RUN),
    bad("wrong method", "PATCH", A_RUN, 405, NOT_ALLOWED, "method", json=RUN),
    bad("logs unknown id", "GET", "/api/runs/999999/logs", 404, NOT_FOUND, "999999"),
    bad("logs id abc", "GET", "/api/runs/abc/logs", 400, INVALID, "run_id"),
    bad("logs tail=0", "GET", A_RUN + "logs?tail=0", 400, INVALID, "tail"),
    bad("logs tail=all", "GET", A_RUN + "logs?tail=all", 400, INVALID, "tail"),
    bad("wrong method", "POST", A_RUN + "logs", 405, NOT_ALLOWED, "method"),
    bad("wrong method", "DELETE", A_RUN + "logs", 405, NOT_ALLOWED, "method"),
]

ELSEWHERE = [
    bad("unknown under /api", "GET", "/api/nope", 404, NOT_FOUND, "/api/"),
    bad("unknown path", "GET", "/nope", 404, NOT_FOUND, "/api/"),
    bad("bare /api", "GET", "/api", 404, NOT_FOUND, "/api/"),
    bad("POST unknown path", "POST", "/api/nope", 404, NOT_FOUND, "/api/", json={}),
    bad("unknown under a run", "GET", A_RUN + "nope", 404, NOT_FOUND, "/api/"),
    bad("wrong method", "POST", "/api/health", 405, NOT_ALLOWED, "method"),
    bad("wrong method", "POST", "/metrics", 405, NOT_ALLOWED, "method"),
]


def other_slash_form(path: str) -> str:
    route, sep, query = path.partition("?")
    route = route[:-1] if route.endswith("/") else route + "/"
    return route + sep + query


def state(http: httpx.Client, world: World) -> object:
    """What a bad request must leave unchanged: the runs, and the probe series of the run and
    the pod."""
    runs = [(run["id"], run["state"]) for run in http.get("/api/runs/").json()]
    probe = {"metric_filter": PROBE}
    return (
        runs,
        run_series(http, world.run_id, **probe),
        http.get(f"/api/metrics/{world.pod}/", params=probe).json(),
    )


def send(http: httpx.Client, world: World, row: Bad, path: str) -> httpx.Response:
    where = path.format(run=world.run_id, pod=world.pod)
    kwargs = dict(row.send)
    if "json" in kwargs:
        # "{pod}" inside a body names the world's pod too.
        kwargs["json"] = json.loads(json.dumps(kwargs["json"]).replace("{pod}", world.pod))
    if callable(kwargs.get("content")):
        kwargs["content"] = kwargs["content"]()
    return http.request(row.method, where, **kwargs)


@pytest.mark.parametrize("form", ["documented form", "other slash form"])
@pytest.mark.parametrize(
    "row", PODS + METRICS_READ + METRIC_POST + BATCH_POST + RUN_POST + ONE_RUN + ELSEWHERE
)
def test_bad_request_gets_the_error_shape(
    http: httpx.Client, world: World, row: Bad, form: str
) -> None:
    path = row.path if form == "documented form" else other_slash_form(row.path)
    before = state(http, world)

    response = send(http, world, row, path)

    assert_error(response, row.status, row.code, row.mentions)
    assert state(http, world) == before, "a refused request changed what is stored"


# -- one atomic batch --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_point", "status", "named"),
    [
        pytest.param({"value": "x" * 10_001}, 400, "50.value", id="text too long"),
        pytest.param({"value": True}, 400, "50.value", id="boolean value"),
        pytest.param({"date": "yesterday"}, 400, "50.date", id="bad date"),
        pytest.param({"run_id": None}, 400, "point 50", id="no owner"),
        pytest.param({"run_id": 999_999}, 404, "999999", id="unknown run"),
    ],
)
def test_batch_with_one_bad_point_stores_none(
    http: httpx.Client, world: World, last_point: dict[str, Any], status: int, named: str
) -> None:
    name = f"atomic-{uuid.uuid4().hex[:8]}"
    good = [{"run_id": world.run_id, "name": name, "value": i / 10} for i in range(50)]
    bad_point = {**good[0], **last_point}
    if bad_point.get("pod_name") == "{pod}":
        bad_point["pod_name"] = world.pod

    response = http.post("/api/metrics/batch", json=[*good, bad_point])

    assert_error(response, status, INVALID if status == 400 else NOT_FOUND, (named,))
    assert run_series(http, world.run_id, metric_filter=name) == {}
    # The same points without the bad one are stored, all of them.
    assert http.post("/api/metrics/batch", json=good).status_code == 201
    assert len(run_series(http, world.run_id, metric_filter=name)[name]) == len(good)


# -- conflicts and limits need servers of their own ----------------------------------------------


def test_second_run_while_one_is_active_is_409_and_creates_nothing(server: RunningServer) -> None:
    with client(server) as http:
        first = start_run(http, name="first")

        response = http.post("/api/runs/", json={"name": "second", "num_workers": 1})

        error = assert_error(response, 409, "run_active", (str(first["id"]), "DELETE"))
        assert error["details"] == {"active_run_id": first["id"]}
        assert [run["id"] for run in http.get("/api/runs/").json()] == [first["id"]]
        assert get_run(http, first["id"])["name"] == "first"


def test_limit_the_backend_cannot_enforce_is_400_and_creates_nothing(
    start_server: StartServer,
) -> None:
    server = start_server(backend=FakeBackend(supports_bandwidth=False))
    with client(server) as http:
        response = http.post("/api/runs/", json={**RUN, "max_bandwidth": 100})

        assert_error(response, 400, "limit_unsupported", ("bandwidth",))
        assert http.get("/api/runs/").json() == []


# -- both slash forms, never a redirect --------------------------------------------------------

GET_PATHS = [
    "/api/pods/",
    "/api/metrics/",
    "/api/metrics/{pod}/",
    "/api/metrics/{run}/?metric_type=run",
    "/api/metrics/{run}/?metric_type=run&format=csv",
    "/api/runs/",
    "/api/runs/{run}/",
    "/api/runs/{run}/logs",
    "/api/health",
    "/metrics",
]


@pytest.mark.parametrize("path", GET_PATHS)
def test_get_answers_in_both_slash_forms_without_redirect(
    http: httpx.Client, world: World, path: str
) -> None:
    documented = path.format(run=world.run_id, pod=world.pod)
    answers = [
        http.get(where, follow_redirects=False)
        for where in (documented, other_slash_form(documented))
    ]

    assert [answer.status_code for answer in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].headers["content-type"] == answers[1].headers["content-type"]
