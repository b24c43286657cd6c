"""Runs that queue (``queue: true``, or a server started with ``queue_runs``): stored QUEUED at
once, started by the server one at a time in creation order, abortable before they start; and
the 409 unchanged for runs that do not ask to queue. On the fake backend, which the tests move
through its phases; tests/orchestrator/test_queue.py runs real workers and restarts the server."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.api.helpers import (
    active_run,
    assert_error,
    client,
    get_run,
    start_run,
    wait_for,
    wait_for_state,
)
from tests.conftest import RunningServer, StartServer


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with client(server) as http:
        yield http


def queued_run(http: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    run = start_run(http, name=name, num_workers=1, queue=True, **fields)
    assert run["state"] == "QUEUED", run
    return run


def test_three_runs_posted_at_once_all_queue_and_run_one_after_another_in_order(
    server: RunningServer,
) -> None:
    attempts = 3
    barrier = threading.Barrier(attempts)

    def post(index: int) -> httpx.Response:
        with client(server) as http:
            barrier.wait(timeout=30)
            body = {"name": f"queued {index}", "num_workers": 1, "queue": True}
            return http.post("/api/runs/", json=body)

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        responses = list(pool.map(post, range(attempts)))

    assert [r.status_code for r in responses] == [200] * attempts, [r.text for r in responses]
    posted = sorted((r.json() for r in responses), key=lambda run: run["id"])
    # One starts at once; the others wait. Which one starts is whichever committed first: a
    # run whose insert had not committed yet was not in line when the first one looked.
    started = [run["id"] for run in posted if run["state"] == "INITIALIZED"]
    waiting = [run["id"] for run in posted if run["state"] == "QUEUED"]
    assert len(started) == 1, posted
    assert len(waiting) == attempts - 1, posted
    # From then on, the queue is served first in line first: by id.
    ids = started + waiting
    with client(server) as http:
        for turn, run_id in enumerate(ids):
            wait_for_state(http, run_id, "STARTED")
            later = [get_run(http, other)["state"] for other in ids[turn + 1 :]]
            assert later == ["QUEUED"] * len(later)
            assert server.fake.launched == ids[: turn + 1]
            server.fake.finish(run_id)
            wait_for_state(http, run_id, "FINISHED")
        ended = [get_run(http, run_id) for run_id in ids]
    assert [run["state"] for run in ended] == ["FINISHED"] * attempts
    # One after another: each started after the one before it had finished.
    for before, after in itertools.pairwise(ended):
        assert after["started_at"] >= before["finished_at"], (before, after)
        assert after["created_at"] <= before["finished_at"]


def test_a_run_that_does_not_queue_is_still_409_behind_an_active_or_queued_run(
    http: httpx.Client,
) -> None:
    first = start_run(http, name="first", num_workers=1)
    second = queued_run(http, "second")

    plain = http.post("/api/runs/", json={"name": "plain", "num_workers": 1})
    explicit = http.post("/api/runs/", json={"name": "no", "num_workers": 1, "queue": False})

    for response in (plain, explicit):
        error = assert_error(response, 409, "run_active", (str(first["id"]), "queue"))
        assert error["details"] == {"active_run_id": first["id"]}
    assert [run["id"] for run in http.get("/api/runs/").json()] == [second["id"], first["id"]]


def test_a_run_that_does_not_queue_may_not_jump_the_queue(
    http: httpx.Client, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = active_run(http, name="first", num_workers=1)
    second = queued_run(http, "second")
    # Between the end of the active run and the start of the queued one nothing is active, but
    # runs wait: a run that does not queue may not take their turn. The abort below keeps the
    # queue from moving (its workers are still stopping) while the POST is tried, in a thread.
    stop = server.fake.stop

    def slow_stop(run: Any, *, grace_s: float) -> None:
        time.sleep(1.5)
        stop(run, grace_s=grace_s)

    monkeypatch.setattr(server.fake, "stop", slow_stop)
    with ThreadPoolExecutor(max_workers=1) as pool:
        aborting = pool.submit(http.delete, f"/api/runs/{first['id']}/")
        wait_for(
            lambda: get_run(http, first["id"])["state"] == "ABORTED",
            what="the active run to be ABORTED",
        )
        assert get_run(http, second["id"])["state"] == "QUEUED"

        response = http.post("/api/runs/", json={"name": "jumper", "num_workers": 1})

        error = assert_error(response, 409, "run_active", ("queue", str(second["id"])))
        assert error["details"] == {"queued_run_ids": [second["id"]]}
        assert aborting.result().status_code == 200
    wait_for_state(http, second["id"], "STARTED")
    assert [run["name"] for run in http.get("/api/runs/").json()] == ["second", "first"]


@pytest.mark.parametrize("text", ["true", "True", "1", "yes"])
def test_a_form_asks_to_queue_with_python_booleans_as_text(http: httpx.Client, text: str) -> None:
    first = start_run(http, name="first", num_workers=1)

    response = http.post("/api/runs/", data={"name": "form", "num_workers": "1", "queue": text})

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "QUEUED"
    assert get_run(http, first["id"])["state"] in ("INITIALIZED", "STARTED")


def test_queue_that_is_not_a_boolean_is_400(http: httpx.Client) -> None:
    response = http.post("/api/runs/", json={"name": "bad", "num_workers": 1, "queue": "later"})

    error = assert_error(response, 400, "invalid_input", ("queue",))
    assert http.get("/api/runs/").json() == [], error


def test_delete_of_a_queued_run_aborts_it_and_it_never_starts(
    http: httpx.Client, server: RunningServer
) -> None:
    first = active_run(http, name="first", num_workers=1)
    second = queued_run(http, "second")
    third = queued_run(http, "third")

    response = http.delete(f"/api/runs/{second['id']}/")

    assert response.status_code == 200
    aborted = response.json()
    assert aborted["state"] == "ABORTED"
    assert aborted["started_at"] is None
    assert aborted["finished_at"] is not None
    assert "queued" in aborted["job_metadata"]["reason"]
    assert get_run(http, second["id"]) == aborted
    # Aborting it again answers it unchanged.
    assert http.delete(f"/api/runs/{second['id']}/").json() == aborted

    server.fake.finish(first["id"])
    wait_for_state(http, third["id"], "STARTED")
    assert server.fake.launched == [first["id"], third["id"]]
    assert get_run(http, second["id"]) == aborted


def test_time_limit_counts_from_the_real_start_not_from_queueing(
    http: httpx.Client, server: RunningServer
) -> None:
    first = active_run(http, name="first", num_workers=1)
    limit_s = 3.0
    second = queued_run(http, "second", time_limit_s=limit_s)
    time.sleep(limit_s + 1)  # queued for longer than its limit
    assert get_run(http, second["id"])["state"] == "QUEUED"

    server.fake.finish(first["id"])
    wait_for_state(http, second["id"], "STARTED")
    started_at = time.monotonic()
    time.sleep(1.0)
    assert get_run(http, second["id"])["state"] == "STARTED"

    failed = wait_for_state(http, second["id"], "FAILED")
    assert time.monotonic() - started_at >= limit_s - 0.5
    assert "time_limit_s" in failed["job_metadata"]["error"]


def test_a_server_set_to_queue_runs_queues_requests_that_do_not_say(
    start_server: StartServer,
) -> None:
    server = start_server(queue_runs=True)
    with client(server) as http:
        first = start_run(http, name="first", num_workers=1)
        assert first["state"] == "INITIALIZED"
        # MLBench's client posts a form and cannot ask to queue.
        form = http.post("/api/runs/", data={"name": "form", "num_workers": "1"})
        assert form.status_code == 200, form.text
        assert form.json()["state"] == "QUEUED"
        # Asking not to queue still gets the 409.
        refused = http.post("/api/runs/", json={"name": "no", "num_workers": 1, "queue": False})
        assert_error(refused, 409, "run_active", (str(first["id"]),))

        wait_for_state(http, first["id"], "STARTED")
        server.fake.finish(first["id"])
        wait_for_state(http, form.json()["id"], "STARTED")


def test_queue_is_documented_in_the_openapi_schema(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]

    assert "QUEUED" in schemas["RunPublic"]["properties"]["state"]["enum"]
    assert "queue" in schemas["RunCreate"]["properties"]
