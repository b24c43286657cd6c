"""Runs: listing, starting (one active run at a time, decided by the database), aborting, failing,
logs, and limits the backend cannot enforce."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.helpers import (
    active_run,
    client,
    error_code,
    get_run,
    run_series,
    start_run,
    wait_for_state,
)
from tests.conftest import RunningServer


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with client(server) as http:
        yield http


def finished_run(http: httpx.Client, server: RunningServer, name: str) -> int:
    run_id: int = active_run(http, name=name)["id"]
    server.fake.finish(run_id)
    wait_for_state(http, run_id, "FINISHED")
    return run_id


def test_list_is_newest_first(http: httpx.Client, server: RunningServer) -> None:
    assert http.get("/api/runs/").json() == []
    first = finished_run(http, server, "first")
    second = finished_run(http, server, "second")
    third = start_run(http, name="third")["id"]

    runs = http.get("/api/runs/").json()

    assert [(run["id"], run["name"]) for run in runs] == [
        (third, "third"),
        (second, "second"),
        (first, "first"),
    ]
    # The run being launched changes meanwhile; the slashless path lists the same runs.
    assert [run["id"] for run in http.get("/api/runs").json()] == [third, second, first]


def test_get_one_run_and_unknown_id(http: httpx.Client) -> None:
    run = start_run(http, name="one", num_workers=3, num_cpus=0.5)

    fetched = get_run(http, run["id"])

    assert fetched["id"] == run["id"]
    assert fetched["job_id"] == run["job_id"]
    assert (fetched["num_workers"], fetched["num_cpus"]) == (3, 0.5)
    missing = http.get(f"/api/runs/{run['id'] + 1}/")
    assert missing.status_code == 404
    assert error_code(missing) == "not_found"


def test_post_answers_initialized_then_run_starts(http: httpx.Client) -> None:
    response = http.post("/api/runs/", json={"name": "fresh", "num_workers": 2, "num_cpus": 1})

    assert response.status_code == 200
    run = response.json()
    assert run["state"] == "INITIALIZED"
    assert run["finished_at"] is None
    started = wait_for_state(http, run["id"], "STARTED")
    assert started["started_at"] is not None
    assert started["job_id"] == run["job_id"]


def test_post_while_active_is_409_naming_the_active_run(http: httpx.Client) -> None:
    active = start_run(http, name="busy")

    response = http.post("/api/runs/", json={"name": "second", "num_workers": 1})

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "run_active"
    assert f"run {active['id']}" in error["message"]
    assert error["details"]["active_run_id"] == active["id"]
    assert [run["id"] for run in http.get("/api/runs/").json()] == [active["id"]]


def test_twenty_concurrent_posts_start_exactly_one_run(server: RunningServer) -> None:
    attempts = 20
    barrier = threading.Barrier(attempts)

    def attempt(index: int) -> int:
        with client(server) as http:
            barrier.wait(timeout=30)
            response = http.post("/api/runs/", json={"name": f"racer {index}", "num_workers": 1})
            return response.status_code

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        statuses = list(pool.map(attempt, range(attempts)))

    assert sorted(statuses) == [200] + [409] * (attempts - 1)
    with client(server) as http:
        assert len(http.get("/api/runs/").json()) == 1


def test_delete_aborts_and_keeps_data(http: httpx.Client, server: RunningServer) -> None:
    run = active_run(http, name="to abort")
    point = {"run_id": run["id"], "name": "loss", "value": 0.5}
    assert http.post("/api/metrics", json=point).status_code == 201

    response = http.delete(f"/api/runs/{run['id']}/")

    assert response.status_code == 200
    aborted = response.json()
    assert aborted["state"] == "ABORTED"
    assert aborted["finished_at"] is not None
    assert server.fake.stopped == [run["id"]]
    assert get_run(http, run["id"]) == aborted
    assert [p["value"] for p in run_series(http, run["id"])["loss"]] == ["0.5"]
    # With no active run left, a new one may start.
    assert http.post("/api/runs/", json={"name": "next", "num_workers": 1}).status_code == 200


def test_delete_of_an_ended_run_returns_it_unchanged(
    http: httpx.Client, server: RunningServer
) -> None:
    run_id = finished_run(http, server, "done")
    before = get_run(http, run_id)

    response = http.delete(f"/api/runs/{run_id}")

    assert response.status_code == 200
    assert response.json() == before
    assert get_run(http, run_id) == before


def test_delete_of_an_unknown_run_is_404(http: httpx.Client) -> None:
    response = http.delete("/api/runs/7/")

    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_failed_run_keeps_its_reason(http: httpx.Client, server: RunningServer) -> None:
    run = active_run(http, name="doomed")

    server.fake.fail(run["id"], "worker 1 exited with code 3")

    failed = wait_for_state(http, run["id"], "FAILED")
    assert failed["job_metadata"]["error"] == "worker 1 exited with code 3"
    assert failed["finished_at"] is not None
    assert failed["job_metadata"]["pods"] == run["job_metadata"]["pods"]


def test_logs_of_each_worker(http: httpx.Client) -> None:
    run = active_run(http, name="chatty", num_workers=2)

    response = http.get(f"/api/runs/{run['id']}/logs")

    assert response.status_code == 200
    body = response.json()
    assert body["run_id"] == run["id"]
    assert set(body["logs"]) == set(run["job_metadata"]["pods"])
    for pod, text in body["logs"].items():
        assert pod in text
    assert http.get("/api/runs/99/logs").status_code == 404


def test_bandwidth_cap_the_backend_cannot_enforce_is_400(
    http: httpx.Client, server: RunningServer
) -> None:
    server.fake.supports_bandwidth = False

    response = http.post(
        "/api/runs/", json={"name": "capped", "num_workers": 2, "max_bandwidth": 10}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "limit_unsupported"
    assert "bandwidth" in error["message"]
    assert http.get("/api/runs/").json() == []
    assert server.fake.launched == []
    uncapped = http.post("/api/runs/", json={"name": "uncapped", "num_workers": 2})
    assert uncapped.status_code == 200


def test_bandwidth_caps_tc_can_set_are_accepted_and_smaller_ones_refused(
    http: httpx.Client, server: RunningServer
) -> None:
    """1 kbit/s, tc's smallest whole rate, starts; 0.0001 Mbit/s (0.1 kbit/s) used to start
    too and then fail in tc."""
    too_small = http.post(
        "/api/runs/", json={"name": "tiny", "num_workers": 1, "max_bandwidth": 0.0001}
    )

    assert too_small.status_code == 400
    assert "0.001" in too_small.json()["error"]["message"]
    assert server.fake.launched == []
    smallest = http.post(
        "/api/runs/", json={"name": "1 kbit", "num_workers": 1, "max_bandwidth": 0.001}
    )
    assert smallest.status_code == 200, smallest.text
    assert smallest.json()["max_bandwidth"] == 0.001


def test_form_encoded_post(http: httpx.Client) -> None:
    form = {"name": "from a form", "num_workers": "2", "num_cpus": "0.5", "max_bandwidth": "100"}

    response = http.post("/api/runs/", data=form)

    assert response.status_code == 200, response.text
    run = response.json()
    assert (run["name"], run["num_workers"], run["num_cpus"]) == ("from a form", 2, 0.5)
    assert run["max_bandwidth"] == 100.0
