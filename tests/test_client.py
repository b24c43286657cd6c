"""The client against a real server (fake backend) on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from distbench.client import (
    ApiError,
    Client,
    Health,
    NewPoint,
    Pod,
    Point,
    Run,
    RunPoint,
    RunWaitTimeout,
    ServerUnreachable,
    StoredPoint,
    numbers,
    parse_date,
)
from distbench.errors import (
    BodyTooLarge,
    DatabaseUnavailable,
    DistbenchError,
    Forbidden,
    InternalError,
    InvalidInput,
    LimitUnsupported,
    NotFound,
    RunActive,
    Unauthenticated,
)
from distbench.orchestrator.tokens import run_token
from tests.conftest import RunningServer, StartServer, free_port
from tests.fake_backend import FakeBackend

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.url) as api:
        yield api


def eventually(check: Callable[[], Any], *, timeout_s: float = 15.0) -> Any:
    """``check()``'s first truthy answer; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s (last answer: {answer!r})")
        time.sleep(0.05)


def started_run(client: Client, *, num_workers: int = 2, name: str = "demo") -> Run:
    """A run whose workers (fake pods) are recorded, so pod metrics can be posted."""
    run = client.start_run(name=name, num_workers=num_workers)
    eventually(lambda: len(client.run(run.id).job_metadata.get("pods", [])) == num_workers)
    return client.wait_for_run(run.id, timeout_s=15, poll_s=0.05, until={"STARTED"})


# -- runs ------------------------------------------------------------------------------------------
def test_start_run_returns_typed_run(client: Client) -> None:
    run = client.start_run(
        name="typed",
        num_workers=2,
        num_cpus=0.5,
        max_bandwidth=100.0,
        time_limit_s=3600,
        start_timeout_s=60,
        options={"max_epochs": 3},
    )
    assert isinstance(run, Run)
    assert run.id >= 1
    assert run.name == "typed"
    assert run.state == "INITIALIZED"
    assert run.is_active
    assert not run.has_ended
    assert run.created_at.tzinfo is not None
    assert run.created_at.utcoffset() == dt.timedelta(0)
    assert abs(run.created_at - dt.datetime.now(UTC)) < dt.timedelta(minutes=5)
    assert len(run.job_id) == 36
    assert run.num_workers == 2
    assert run.num_cpus == 0.5
    assert run.max_bandwidth == 100.0
    assert run.options["max_epochs"] == 3
    assert run.time_limit_s == 3600
    assert run.start_timeout_s == 60
    assert run.benchmark == "digits"
    assert run.backend == "gloo"
    assert run.finished_at is None
    assert run.raw["id"] == run.id
    assert run.raw["job_metadata"] == run.job_metadata


def test_runs_and_run_read_back_what_was_started(server: RunningServer, client: Client) -> None:
    first = client.start_run(name="first", num_workers=1)
    server.fake.finish(first.id)
    client.wait_for_run(first.id, timeout_s=15, poll_s=0.05)
    second = client.start_run(name="second", num_workers=1)

    runs = client.runs()
    assert [run.id for run in runs] == [second.id, first.id]  # newest first
    assert [run.name for run in runs] == ["second", "first"]
    one = client.run(first.id)
    assert one.id == first.id
    assert one.job_id == first.job_id
    assert one.created_at == first.created_at
    assert one.state == "FINISHED"
    assert one.finished_at is not None
    assert one.finished_at >= one.created_at


def test_wait_for_run_returns_end_state(server: RunningServer, client: Client) -> None:
    run = started_run(client, num_workers=1)
    assert run.state == "STARTED"
    assert run.started_at is not None
    timer = threading.Timer(0.3, server.fake.fail, args=(run.id, "worker 0 exploded"))
    timer.start()
    try:
        ended = client.wait_for_run(run.id, timeout_s=15, poll_s=0.05)
    finally:
        timer.cancel()
    assert ended.state == "FAILED"
    assert ended.has_ended
    assert "worker 0 exploded" in ended.job_metadata["error"]


def test_wait_for_run_times_out_with_last_seen_run(client: Client) -> None:
    run = started_run(client, num_workers=1)
    started = time.monotonic()
    with pytest.raises(RunWaitTimeout) as caught:
        client.wait_for_run(run.id, timeout_s=0.3, poll_s=0.05)
    assert time.monotonic() - started < 5
    assert caught.value.run.id == run.id
    assert caught.value.run.state == "STARTED"
    assert f"run {run.id}" in str(caught.value)
    assert isinstance(caught.value, DistbenchError)


def test_wait_for_run_refuses_unknown_states(client: Client) -> None:
    with pytest.raises(ValueError, match="until"):
        client.wait_for_run(1, timeout_s=1, until={"DONE"})


def test_abort_run(server: RunningServer, client: Client) -> None:
    run = started_run(client, num_workers=2)
    aborted = client.abort_run(run.id)
    assert aborted.id == run.id
    assert aborted.state == "ABORTED"
    assert aborted.finished_at is not None
    assert run.id in server.fake.stopped
    assert client.run(run.id).state == "ABORTED"
    # Aborting an ended run returns it unchanged; and a new run may start.
    assert client.abort_run(run.id).state == "ABORTED"
    assert client.start_run(name="next", num_workers=1).state == "INITIALIZED"


def test_run_logs(client: Client) -> None:
    run = started_run(client, num_workers=2)
    logs = client.run_logs(run.id)
    pods = client.run(run.id).job_metadata["pods"]
    assert sorted(logs) == sorted(pods)
    assert all(text == f"fake log of {pod}\n" for pod, text in logs.items())
    assert client.run_logs(run.id, tail=5) == logs
    with pytest.raises(InvalidInput) as caught:
        client.run_logs(run.id, tail=0)
    assert caught.value.details["errors"][0]["field"] == "tail"
    with pytest.raises(NotFound):
        client.run_logs(run.id + 100)


# -- pods and pod metrics --------------------------------------------------------------------------
def test_pods(server: RunningServer, client: Client) -> None:
    assert client.pods() == []
    run = started_run(client, num_workers=2)
    pods = client.pods()
    assert all(isinstance(pod, Pod) for pod in pods)
    assert [pod.name for pod in pods] == sorted(run.job_metadata["pods"])
    assert {pod.phase for pod in pods} == {"Running"}
    assert pods[0].ip == "198.18.0.2"
    assert pods[0].labels.startswith("{'app': 'distbench'")
    assert pods[0].label_map == {
        "app": "distbench",
        "component": "worker",
        "release": server.settings.release,
        "run-id": str(run.id),
    }
    server.fake.finish(run.id)
    assert {pod.phase for pod in client.pods()} == {"Succeeded"}


def test_pod_metrics_collected_and_posted(client: Client) -> None:
    run = started_run(client, num_workers=2)
    pod = sorted(run.job_metadata["pods"])[0]
    # The collector samples running pods every 0.2 s.
    series = eventually(lambda: client.pod_metrics(pod).get("container_cpu_usage_seconds_total"))
    assert all(isinstance(point, Point) for point in series)
    assert all(point.date.tzinfo is not None for point in series)
    assert series[0].value == 0.0

    stored = client.post_metric(pod_name=pod, name="gpu_util", value=0.5, date=T0)
    assert stored == StoredPoint(
        name="gpu_util", date=T0, value=0.5, cumulative=False, metadata="", pod_name=pod
    )
    mine = client.pod_metrics(pod, metric_filter="gpu_util")
    assert mine == {"gpu_util": [Point(T0, 0.5)]}

    everything = client.all_pod_metrics()
    assert set(everything) == set(run.job_metadata["pods"])
    assert everything[pod]["gpu_util"] == [Point(T0, 0.5)]
    only = client.all_pod_metrics(metric_filter="gpu_util")
    assert only == {pod: {"gpu_util": [Point(T0, 0.5)]}}

    with pytest.raises(NotFound) as caught:
        client.pod_metrics("no-such-pod")
    assert caught.value.details == {"pod_name": "no-such-pod"}


def test_pod_metrics_since_and_export(client: Client) -> None:
    run = started_run(client, num_workers=1)
    pod = run.job_metadata["pods"][0]
    for seconds in range(3):
        client.post_metric(
            pod_name=pod, name="load", value=seconds, date=T0 + dt.timedelta(seconds=seconds)
        )
    newer = client.pod_metrics(pod, metric_filter="load", since=T0 + dt.timedelta(seconds=1))
    assert newer == {"load": [Point(T0 + dt.timedelta(seconds=2), 2.0)]}
    every_pod = client.all_pod_metrics(metric_filter="load", since=T0)
    assert [p.value for p in every_pod[pod]["load"]] == [1.0, 2.0]
    assert client.pod_metrics(pod, metric_filter="load", last_n=1)["load"][0].value == 2.0

    exported = json.loads(client.export_pod(pod, "json"))
    assert [p["value"] for p in exported["load"]] == ["0.0", "1.0", "2.0"]
    rows = list(csv.reader(io.StringIO(client.export_pod(pod, "csv").decode())))
    assert rows[0] == ["pod_name", "metric", "date", "value", "cumulative", "metadata"]
    with zipfile.ZipFile(io.BytesIO(client.export_pod(pod, "zip"))) as archive:
        assert f"{pod}/load.json" in archive.namelist()


# -- run metrics -----------------------------------------------------------------------------------
def test_post_metric_and_read_run_series(client: Client) -> None:
    run = started_run(client, num_workers=1)
    stored = client.post_metric(
        run_id=run.id,
        name="accuracy",
        value="0.7845",
        date="2024-05-01T14:00:00.123456+02:00",
        cumulative=True,
        metadata="epoch 1",
    )
    assert stored == StoredPoint(
        name="accuracy",
        date=T0,
        value=0.7845,
        cumulative=True,
        metadata="epoch 1",
        run_id=run.id,
    )
    client.post_metric(run_id=run.id, name="loss", value=math.nan, date=T0)
    client.post_metric(run_id=run.id, name="loss", value=math.inf, date=T0 + dt.timedelta(1))
    client.post_metric(run_id=run.id, name="loss", value="-inf", date=T0 + dt.timedelta(2))

    series = client.run_metrics(run.id)
    assert set(series) == {"accuracy", "loss"}
    assert series["accuracy"] == [RunPoint(T0, 0.7845, True, "epoch 1")]
    loss = [point.value for point in series["loss"]]
    assert math.isnan(loss[0])
    assert loss[1:] == [math.inf, -math.inf]
    assert all(isinstance(point, RunPoint) for point in series["loss"])


def test_text_values_come_back_as_str_and_numbers_as_float(client: Client) -> None:
    run = started_run(client, num_workers=1)
    sentence = "Goal reached: 80.2 % after 3 epochs"

    stored = client.post_metric(run_id=run.id, name="TaskResult", value=sentence, date=T0)
    client.post_metric(run_id=run.id, name="mixed", value=1.5, date=T0)
    client.post_metric(run_id=run.id, name="mixed", value="1_5", date=T0 + dt.timedelta(1))
    client.post_metric(run_id=run.id, name="mixed", value="2.5", date=T0 + dt.timedelta(2))

    series = client.run_metrics(run.id)
    assert stored.value == sentence
    assert series["TaskResult"] == [RunPoint(T0, sentence, False, "")]
    # Text that float() would read ("1_5") stays text, as the server stored it.
    assert [point.value for point in series["mixed"]] == [1.5, "1_5", 2.5]
    assert numbers(series["mixed"]) == [1.5, 2.5]


def test_post_metric_without_date_uses_server_now(client: Client) -> None:
    run = started_run(client, num_workers=1)
    before = dt.datetime.now(UTC)
    stored = client.post_metric(run_id=run.id, name="step", value=1)
    assert stored.date.tzinfo is not None
    assert before - dt.timedelta(seconds=5) <= stored.date <= before + dt.timedelta(seconds=5)
    assert stored.value == 1.0


def test_ended_run_still_accepts_points(server: RunningServer, client: Client) -> None:
    run = started_run(client, num_workers=1)
    server.fake.finish(run.id)
    client.wait_for_run(run.id, timeout_s=15, poll_s=0.05)
    client.post_metric(run_id=run.id, name="late", value=1.0, date=T0)
    assert client.run_metrics(run.id)["late"] == [RunPoint(T0, 1.0, False, "")]


def test_run_metrics_since_is_strict(client: Client) -> None:
    run = started_run(client, num_workers=1)
    dates = [T0 + dt.timedelta(seconds=s) for s in range(4)]
    client.post_metrics(
        [NewPoint(run_id=run.id, name="acc", value=i / 10, date=d) for i, d in enumerate(dates)]
    )
    assert [p.date for p in client.run_metrics(run.id, since=dates[1])["acc"]] == dates[2:]
    # The same instant in another offset, and as text, selects the same points.
    other_offset = dates[1].astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert [p.date for p in client.run_metrics(run.id, since=other_offset)["acc"]] == dates[2:]
    text = "2024-05-01T12:00:01.123456+00:00"
    assert [p.date for p in client.run_metrics(run.id, since=text)["acc"]] == dates[2:]
    # Polling with the last date seen never returns a point twice.
    assert client.run_metrics(run.id, since=dates[-1]) == {}


def test_run_metrics_filter_last_n_and_max_points(client: Client) -> None:
    run = started_run(client, num_workers=1)
    points = [
        NewPoint(run_id=run.id, name="loss", value=1.0, date=T0 + dt.timedelta(seconds=s))
        for s in range(100)
    ]
    spike = NewPoint(run_id=run.id, name="loss", value=50.0, date=T0 + dt.timedelta(seconds=42.5))
    points.append(spike)
    points.append(NewPoint(run_id=run.id, name="acc", value=0.9, date=T0))
    assert client.post_metrics(points) == 102

    assert set(client.run_metrics(run.id, metric_filter="acc")) == {"acc"}
    last = client.run_metrics(run.id, metric_filter="loss", last_n=3)["loss"]
    assert [p.date for p in last] == [T0 + dt.timedelta(seconds=s) for s in (97, 98, 99)]


def test_run_metrics_max_points_keeps_spikes(client: Client) -> None:
    run = started_run(client, num_workers=1)
    points = [
        NewPoint(run_id=run.id, name="loss", value=1.0, date=T0 + dt.timedelta(seconds=s))
        for s in range(100)
    ]
    spike = NewPoint(run_id=run.id, name="loss", value=50.0, date=T0 + dt.timedelta(seconds=42.5))
    assert client.post_metrics([*points, spike]) == 101
    small = client.run_metrics(run.id, max_points=10)
    assert 2 <= len(small["loss"]) <= 10
    assert max(p.value for p in small["loss"]) == 50.0  # the spike survives downsampling


def test_post_metrics_batch_is_atomic(client: Client) -> None:
    run = started_run(client, num_workers=1)
    good = {"run_id": run.id, "name": "acc", "value": 0.5, "date": T0}
    with pytest.raises(NotFound) as caught:
        client.post_metrics([good, {**good, "run_id": run.id + 100}])
    assert caught.value.details["run_ids"] == [run.id + 100]
    assert caught.value.status_code == 404
    with pytest.raises(InvalidInput) as bad_value:
        client.post_metrics([good, {**good, "value": " "}])
    assert bad_value.value.details["errors"][0]["field"] == "1.value"
    with pytest.raises(InvalidInput, match="point 1"):
        client.post_metrics([good, {**good, "run_id": None}])
    assert client.run_metrics(run.id) == {}  # none of the failed batches left a point

    assert client.post_metrics([good, NewPoint(run_id=run.id, name="acc", value=0.6)]) == 2
    assert [p.value for p in client.run_metrics(run.id)["acc"]] == [0.5, 0.6]
    assert client.post_metrics([]) == 0


def test_export_run(server: RunningServer, client: Client) -> None:
    run = started_run(client, num_workers=1)
    client.post_metric(run_id=run.id, name="acc", value=0.25, date=T0, metadata="m")
    client.post_metric(run_id=run.id, name="acc", value=0.5, date=T0 + dt.timedelta(1))

    as_json = json.loads(client.export_run(run.id, "json"))
    assert as_json == {
        "acc": [
            {"date": "2024-05-01T12:00:00.123456Z", "value": "0.25", "cumulative": False,
             "metadata": "m"},
            {"date": "2024-05-02T12:00:00.123456Z", "value": "0.5", "cumulative": False,
             "metadata": ""},
        ]
    }  # fmt: skip
    filtered = json.loads(client.export_run(run.id, "json", since=T0))
    assert [p["value"] for p in filtered["acc"]] == ["0.5"]

    rows = list(csv.reader(io.StringIO(client.export_run(run.id, "csv").decode())))
    assert rows[0] == ["run_id", "metric", "date", "value", "cumulative", "metadata"]
    assert rows[1] == [str(run.id), "acc", "2024-05-01T12:00:00.123456Z", "0.25", "False", "m"]
    assert len(rows) == 3

    server.fake.finish(run.id)
    client.wait_for_run(run.id, timeout_s=15, poll_s=0.05)
    with zipfile.ZipFile(io.BytesIO(client.export_run(run.id, "zip"))) as archive:
        names = archive.namelist()
        stem = f"run-{run.id}"
        assert f"{stem}/acc.json" in names
        assert f"{stem}/official_result.txt" in names
        assert json.loads(archive.read(f"{stem}/run.json"))["state"] == "FINISHED"
    with pytest.raises(NotFound):
        client.export_run(run.id + 100, "csv")


# -- operations ------------------------------------------------------------------------------------
def test_health_and_operator_endpoints(client: Client) -> None:
    health = client.health()
    assert health == Health(status="ok", database="ok", backend="fake", version=health.version)
    assert health.ok
    assert health.version
    assert "distbench_http_requests" in client.prometheus_metrics()
    assert "/api/runs/" in client.openapi()["paths"]


# -- errors ----------------------------------------------------------------------------------------
def test_bad_input_is_invalid_input_with_details(client: Client) -> None:
    with pytest.raises(InvalidInput) as caught:
        client.start_run(name="", num_workers=0)
    error = caught.value
    assert error.status_code == 400
    assert error.code == "invalid_input"
    assert {problem["field"] for problem in error.details["errors"]} == {"name", "num_workers"}
    assert "num_workers" in error.message
    assert str(error) == error.message

    with pytest.raises(InvalidInput, match="ISO 8601"):
        client.run_metrics(1, since="yesterday")
    with pytest.raises(InvalidInput, match=r"pod_name .* or run_id"):
        client.post_metric(name="x", value=1.0)
    with pytest.raises(InvalidInput):
        client.run_metrics(1, max_points=1)


def test_not_found(client: Client) -> None:
    with pytest.raises(NotFound) as caught:
        client.run(12345)
    assert caught.value.status_code == 404
    assert caught.value.code == "not_found"
    with pytest.raises(NotFound):
        client.run_metrics(12345)
    with pytest.raises(NotFound):
        client.abort_run(12345)
    with pytest.raises(NotFound) as posted:
        client.post_metric(run_id=12345, name="acc", value=1.0)
    assert posted.value.details == {"run_ids": [12345], "pod_names": []}


def test_second_active_run_is_run_active(client: Client) -> None:
    active = client.start_run(name="one", num_workers=1)
    with pytest.raises(RunActive) as caught:
        client.start_run(name="two", num_workers=1)
    assert caught.value.status_code == 409
    assert caught.value.message
    assert [run.id for run in client.runs()] == [active.id]


def test_start_run_with_queue_comes_back_queued_and_starts_in_turn(
    server: RunningServer, client: Client
) -> None:
    active = started_run(client, num_workers=1, name="active")
    queued = client.start_run(name="queued", num_workers=1, queue=True)
    assert (queued.state, queued.is_queued, queued.is_active) == ("QUEUED", True, False)
    assert not queued.has_ended
    with pytest.raises(RunActive):
        client.start_run(name="refused", num_workers=1, queue=False)

    server.fake.finish(active.id)
    started = client.wait_for_run(queued.id, timeout_s=15, until={"STARTED"})
    assert started.is_active


def test_limit_the_backend_cannot_enforce(start_server: StartServer) -> None:
    server = start_server(backend=FakeBackend(supports_bandwidth=False))
    with Client(server.url) as client:
        with pytest.raises(LimitUnsupported) as caught:
            client.start_run(name="capped", num_workers=1, max_bandwidth=10)
        assert caught.value.status_code == 400
        assert client.runs() == []


def test_batch_over_the_limit_is_body_too_large(start_server: StartServer) -> None:
    server = start_server(max_batch_points=2)
    with Client(server.url) as client:
        points = [NewPoint(run_id=1, name="acc", value=i) for i in range(3)]
        with pytest.raises(BodyTooLarge) as caught:
            client.post_metrics(points)
        assert caught.value.status_code == 413
        assert caught.value.details == {"limit_points": 2}


def test_token_is_sent_and_checked(start_server: StartServer) -> None:
    server = start_server(token="s3cret-client-token")
    seen: list[str | None] = []
    http = httpx.Client(
        event_hooks={"request": [lambda r: seen.append(r.headers.get("authorization"))]}
    )
    with Client(server.url, token="s3cret-client-token", http=http) as client:
        run = client.start_run(name="authorized", num_workers=1)
        assert run.state == "INITIALIZED"
        assert client.abort_run(run.id).state == "ABORTED"
    assert seen == ["Bearer s3cret-client-token", "Bearer s3cret-client-token"]
    assert not http.is_closed  # a client passed in belongs to the caller
    http.close()

    with Client(server.url) as anonymous:
        assert anonymous.runs()[0].id == run.id  # reads need no token
        with pytest.raises(Unauthenticated) as missing:
            anonymous.start_run(name="anonymous", num_workers=1)
        assert missing.value.status_code == 401
        assert "Authorization: Bearer" in missing.value.message
    with Client(server.url, token="wrong") as wrong:
        with pytest.raises(Forbidden) as forbidden:
            wrong.post_metric(run_id=run.id, name="acc", value=1.0)
        assert forbidden.value.status_code == 403


def test_run_token_posts_only_its_own_run(start_server: StartServer) -> None:
    server = start_server(token="s3cret-client-token")
    with Client(server.url, token="s3cret-client-token") as admin:
        first = admin.start_run(name="first", num_workers=1)
        admin.abort_run(first.id)
        second = admin.start_run(name="second", num_workers=1)
    with Client(server.url, token=run_token("s3cret-client-token", second.id)) as worker:
        stored = worker.post_metric(run_id=second.id, name="acc", value=0.5, date=T0)
        assert stored.run_id == second.id
        with pytest.raises(Forbidden, match=f"run {second.id}"):
            worker.post_metric(run_id=first.id, name="acc", value=0.5)
        with pytest.raises(Forbidden):
            worker.post_metrics([NewPoint(run_id=first.id, name="acc", value=0.5)])
        with pytest.raises(Forbidden):
            worker.abort_run(second.id)
        assert worker.run_metrics(second.id)["acc"] == [RunPoint(T0, 0.5, False, "")]
        assert worker.run_metrics(first.id) == {}


def test_unknown_endpoint_is_not_found(server: RunningServer) -> None:
    with Client(server.url + "/nowhere") as lost, pytest.raises(NotFound, match="/api/"):
        lost.runs()


def test_unreachable_server_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, timeout=5) as client, pytest.raises(ServerUnreachable) as caught:
        client.runs()
    assert f"{url}/api/runs/" in str(caught.value)
    assert caught.value.url == f"{url}/api/runs/"
    assert isinstance(caught.value, DistbenchError)
    assert "\n" not in str(caught.value)


def test_url_without_scheme_is_refused() -> None:
    with pytest.raises(InvalidInput, match="http://"):
        Client("127.0.0.1:8000")


def _answering(status: int, body: bytes, content_type: str = "application/json") -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return Client(
        "http://distbench.test", http=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_unknown_error_code_keeps_status_code_and_details() -> None:
    body = b'{"error": {"code": "teapot", "message": "short and stout", "details": {"a": 1}}}'
    with pytest.raises(ApiError) as caught:
        _answering(418, body).runs()
    assert caught.value.status_code == 418
    assert caught.value.error_code == "teapot"
    assert caught.value.message == "short and stout"
    assert caught.value.details == {"a": 1}


def test_answer_that_is_not_the_api_is_api_error() -> None:
    with pytest.raises(ApiError) as caught:
        _answering(502, b"<html>Bad Gateway</html>", "text/html").runs()
    assert caught.value.status_code == 502
    assert "Bad Gateway" in caught.value.message
    assert "http://distbench.test/api/runs/" in caught.value.message
    with pytest.raises(ApiError, match="unexpected answer"):
        _answering(200, b'{"not": "a list of runs"}').runs()
    with pytest.raises(InternalError) as internal:
        _answering(500, b'{"error": {"code": "internal_error", "message": "boom"}}').runs()
    assert internal.value.status_code == 500
    assert internal.value.message == "boom"
    assert internal.value.details == {}
    with pytest.raises(ApiError) as unknown:
        _answering(418, b'{"error": {"code": "teapot", "message": "short and stout"}}').runs()
    assert unknown.value.status_code == 418
    assert unknown.value.error_code == "teapot"


def test_health_with_the_database_down_raises_the_typed_error() -> None:
    body = (
        b'{"error": {"code": "database_unavailable", "message": "the database cannot be reached",'
        b' "details": {"status": "degraded", "database": "unreachable"}}}'
    )
    with pytest.raises(DatabaseUnavailable) as raised:
        _answering(503, body).health()
    assert raised.value.status_code == 503
    assert raised.value.details["database"] == "unreachable"


def test_parse_date_is_aware_utc() -> None:
    assert parse_date("2018-08-03T09:21:38.594282Z") == dt.datetime(
        2018, 8, 3, 9, 21, 38, 594282, tzinfo=UTC
    )
    assert parse_date("2018-08-03T11:21:38+02:00").tzinfo == UTC
    assert parse_date("2018-08-03T09:21:38").tzinfo == UTC


def test_benchmarks_are_typed_with_their_origin(client: Client) -> None:
    tasks = {task.name: task for task in client.benchmarks()}
    assert tasks["digits"].builtin
    assert tasks["digits"].status == "ok"
    assert tasks["digits"].defaults["target_accuracy"] == 0.96
    assert tasks["blobs"].source == "distbench-example-plugin 0.1.0"
    assert not tasks["blobs"].builtin


def test_start_run_with_a_command(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(token="command-client-token", allow_commands=True)
    with Client(server.url, token="command-client-token") as api:
        run = api.start_run(
            name="mine", num_workers=2, command=["python", "train.py"], working_dir=str(tmp_path)
        )
        assert run.command == ["python", "train.py"]
        assert run.working_dir == str(tmp_path)
        assert run.benchmark == "command"
        with pytest.raises(InvalidInput, match="does not exist"):
            api.start_run(
                name="x", num_workers=1, command=["python"], working_dir=str(tmp_path / "nope")
            )
    with (
        Client(start_server(token="command-client-token").url, token="command-client-token") as api,
        pytest.raises(Forbidden),
    ):
        api.start_run(name="x", num_workers=1, command=["python", "train.py"])
