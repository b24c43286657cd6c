"""Each request of the seed (MLBench's REST API page), sent as written, answered in the shape the
seed shows: exact keys, values as strings, dates with microseconds and Z, labels as a Python dict
literal. The seed's JSON is made valid (``False`` -> ``false``)."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from distbench.store.pods import record_pod
from tests.api.helpers import (
    JSON_TYPE,
    RUN_KEYS,
    RUN_STATES,
    SEED_DATE,
    active_run,
    client,
    run_series,
    start_run,
    wait_for,
    wait_for_state,
)
from tests.conftest import RunningServer

SEED_ACCEPT = {"Accept": "application/json, text/javascript"}
POD_PHASES = {"Pending", "Running", "Succeeded", "Failed", "Unknown"}

# The seed's POST /api/metrics example body, pod_name and run_id filled in by each test.
SEED_POINT = {
    "name": "accuracy",
    "date": "2018-08-03T09:21:44.331823Z",
    "value": "0.7845",
    "cumulative": False,
    "metadata": "some additional data",
}


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with client(server) as http:
        yield http


@pytest.fixture
def sampled_run(http: httpx.Client) -> dict[str, Any]:
    """A STARTED run of two pods that the collector has sampled at least once."""
    run = active_run(http)
    pods = run["job_metadata"]["pods"]

    def sampled() -> bool:
        body = http.get("/api/metrics/").json()
        return all(body.get(pod) for pod in pods)

    wait_for(sampled, what="the collector to sample every pod")
    return run


def assert_seed_response(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON_TYPE
    assert response.headers["vary"] == "Accept"
    return response.json()


def assert_pod_series(series: Any) -> None:
    """``{metric_name: [{"date", "value"}]}`` as the seed shows it, points in time order."""
    assert isinstance(series, dict)
    assert series
    for name, points in series.items():
        assert isinstance(name, str)
        assert points
        for point in points:
            assert set(point) == {"date", "value"}
            assert SEED_DATE.match(point["date"]), point
            assert isinstance(point["value"], str)
            float(point["value"])
        dates = [point["date"] for point in points]
        assert dates == sorted(dates)


def assert_run_shape(run: Any) -> None:
    assert set(run) >= RUN_KEYS
    assert isinstance(run["id"], int)
    assert isinstance(run["name"], str)
    assert SEED_DATE.match(run["created_at"])
    assert run["state"] in RUN_STATES
    assert str(uuid.UUID(run["job_id"])) == run["job_id"]
    assert isinstance(run["job_metadata"], dict)


def test_get_pods(http: httpx.Client, sampled_run: dict[str, Any]) -> None:
    pods = assert_seed_response(http.get("/api/pods", headers=SEED_ACCEPT))

    assert [pod["name"] for pod in pods] == sampled_run["job_metadata"]["pods"]
    for pod in pods:
        assert set(pod) == {"name", "labels", "phase", "ip"}
        assert pod["phase"] in POD_PHASES
        assert isinstance(pod["ip"], str)
        assert pod["ip"]
        assert isinstance(pod["labels"], str)
        labels = ast.literal_eval(pod["labels"])
        assert isinstance(labels, dict)
        assert labels["run-id"] == str(sampled_run["id"])
        # Written as the seed writes it: Python's repr of the dict, keys sorted.
        assert pod["labels"] == repr(dict(sorted(labels.items())))


def test_get_metrics_of_every_pod(http: httpx.Client, sampled_run: dict[str, Any]) -> None:
    body = assert_seed_response(http.get("/api/metrics", headers=SEED_ACCEPT))

    assert set(body) == set(sampled_run["job_metadata"]["pods"])
    for series in body.values():
        assert_pod_series(series)
        assert "container_cpu_usage_seconds_total" in series


def test_get_metrics_of_one_pod(http: httpx.Client, sampled_run: dict[str, Any]) -> None:
    pod = sampled_run["job_metadata"]["pods"][0]

    series = assert_seed_response(http.get(f"/api/metrics/{pod}/", headers=SEED_ACCEPT))

    assert_pod_series(series)
    # The seed's documented defaults give the same series.
    defaults = {"since": "1970-01-01T00:00:00.000000Z", "metric_type": "pod"}
    again = http.get(f"/api/metrics/{pod}/", params=defaults, headers=SEED_ACCEPT).json()
    assert {name: points[: len(series[name])] for name, points in again.items()} == series


# The pod and run of the seed's POST /api/metrics example, which sends both.
SEED_POD = "quiet-mink-mlbench-worker-1"
SEED_RUN_ID = 2


@pytest.fixture
def seed_pod(http: httpx.Client, server: RunningServer) -> str:
    """The example's pod, recorded as a pod of run 2 (the example's run) as the orchestrator
    records its pods."""
    first = start_run(http)
    assert http.delete(f"/api/runs/{first['id']}/").status_code == 200
    wait_for_state(http, first["id"], "ABORTED")
    assert start_run(http)["id"] == SEED_RUN_ID
    with server.app.state.engine.begin() as conn:
        record_pod(
            conn=conn,
            name=SEED_POD,
            run_id=SEED_RUN_ID,
            rank=1,
            labels={"run-id": str(SEED_RUN_ID)},
            ip="10.0.0.2",
        )
    return SEED_POD


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_post_metric_example_as_written_stores_the_pods_point(
    http: httpx.Client, seed_pod: str, encoding: str
) -> None:
    body = {"pod_name": seed_pod, "run_id": SEED_RUN_ID, **SEED_POINT}
    if encoding == "json":
        response = http.post("/api/metrics", json=body, headers=SEED_ACCEPT)
    else:
        # Form fields as MLBench's client writes them: str() of each, so "False" and "2".
        form = {key: str(value) for key, value in body.items()}
        response = http.post("/api/metrics", data=form, headers=SEED_ACCEPT)

    # The seed's example answer: the pod's point, without run_id.
    assert assert_seed_response(response, 201) == {
        "pod_name": "quiet-mink-mlbench-worker-1",
        "name": "accuracy",
        "date": "2018-08-03T09:21:44.331823Z",
        "value": "0.7845",
        "cumulative": False,
        "metadata": "some additional data",
    }
    stored = http.get(f"/api/metrics/{seed_pod}/").json()["accuracy"]
    assert stored == [{"date": SEED_POINT["date"], "value": SEED_POINT["value"]}]
    assert "accuracy" not in run_series(http, SEED_RUN_ID)


def test_post_metric_of_a_pod(http: httpx.Client, sampled_run: dict[str, Any]) -> None:
    pod = sampled_run["job_metadata"]["pods"][1]

    response = http.post("/api/metrics", json={"pod_name": pod, **SEED_POINT}, headers=SEED_ACCEPT)

    assert assert_seed_response(response, 201) == {"pod_name": pod, **SEED_POINT}
    stored = http.get(f"/api/metrics/{pod}/").json()["accuracy"]
    assert stored == [{"date": SEED_POINT["date"], "value": SEED_POINT["value"]}]


def test_post_metric_of_a_run(http: httpx.Client, sampled_run: dict[str, Any]) -> None:
    run_id = sampled_run["id"]

    response = http.post("/api/metrics", json={"run_id": run_id, **SEED_POINT}, headers=SEED_ACCEPT)

    assert assert_seed_response(response, 201) == {"run_id": run_id, **SEED_POINT}
    stored = http.get(f"/api/metrics/{run_id}/", params={"metric_type": "run"}).json()
    assert stored == {"accuracy": [{k: v for k, v in SEED_POINT.items() if k != "name"}]}


def test_get_runs(http: httpx.Client, server: RunningServer) -> None:
    first = active_run(http, name="Name of the run")
    server.fake.finish(first["id"])
    wait_for(
        lambda: http.get(f"/api/runs/{first['id']}/").json()["state"] == "FINISHED",
        what="the first run to finish",
    )
    second = active_run(http, name="Another run")

    runs = assert_seed_response(http.get("/api/runs/", headers=SEED_ACCEPT))

    assert [run["id"] for run in runs] == [second["id"], first["id"]]
    for run in runs:
        assert_run_shape(run)
    assert [run["state"] for run in runs] == ["STARTED", "FINISHED"]


def test_get_run_by_id(http: httpx.Client) -> None:
    started = active_run(http, name="Name of the run")
    assert started["id"] == 1

    run = assert_seed_response(http.get("/api/runs/1/", headers=SEED_ACCEPT))

    assert_run_shape(run)
    assert run == started


def test_post_run(http: httpx.Client) -> None:
    body = {"name": "Name of the run", "num_workers": 2, "num_cpus": 1, "max_bandwidth": 100}

    run = assert_seed_response(http.post("/api/runs/", json=body, headers=SEED_ACCEPT))

    assert_run_shape(run)
    assert run["name"] == "Name of the run"
    assert run["state"] in {"INITIALIZED", "STARTED"}
    again = http.post("/api/runs/", json=body, headers=SEED_ACCEPT)
    assert again.status_code == 409
