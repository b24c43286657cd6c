"""Helpers shared by the API tests: a client for a running server, runs on the fake backend, and
polling with a deadline instead of fixed sleeps."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.polling import wait_for as wait_for

# The seed's date form: ``2018-08-03T09:21:38.594282Z``, microseconds always present.
SEED_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
RUN_KEYS = {"id", "name", "created_at", "state", "job_id", "job_metadata"}
RUN_STATES = {"INITIALIZED", "STARTED", "FINISHED", "FAILED", "ABORTED"}
JSON_TYPE = "application/json; charset=utf-8"


def client(server: RunningServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def start_run(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "a run", "num_workers": 2, **fields}
    response = http.post("/api/runs/", json=body)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def get_run(http: httpx.Client, run_id: int) -> dict[str, Any]:
    response = http.get(f"/api/runs/{run_id}/")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def wait_for_state(http: httpx.Client, run_id: int, state: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        run = get_run(http, run_id)
        return run if run["state"] == state else None

    return wait_for(reached, what=f"run {run_id} to be {state}")


def wait_for_pods(http: httpx.Client, run_id: int) -> list[str]:
    """The run's pod names, once the orchestrator has recorded them (metrics may name them)."""

    def recorded() -> list[str] | None:
        pods: list[str] | None = get_run(http, run_id)["job_metadata"].get("pods")
        return pods

    return wait_for(recorded, what=f"the pods of run {run_id} to be recorded")


def active_run(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    """A run that has reached STARTED, with its pods recorded."""
    run = start_run(http, **fields)
    wait_for_pods(http, run["id"])
    return wait_for_state(http, run["id"], "STARTED")


def post_batch(http: httpx.Client, points: list[dict[str, Any]]) -> None:
    response = http.post("/api/metrics/batch", json=points)
    assert response.status_code == 201, response.text
    assert response.json() == {"stored": len(points)}


def run_series(http: httpx.Client, run_id: int, **params: Any) -> dict[str, Any]:
    response = http.get(f"/api/metrics/{run_id}/", params={"metric_type": "run", **params})
    assert response.status_code == 200, response.text
    series: dict[str, Any] = response.json()
    return series


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def assert_error(
    response: httpx.Response, status: int, code: str, mentions: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``response`` is the error ``status`` in the one shape, and its message names ``mentions``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON_TYPE
    assert "Accept" in response.headers.get("vary", "")
    body = response.json()
    assert sorted(body) == ["error", "message"], body
    error = body["error"]
    # MLBench's CLI reads the top-level message: the same text.
    assert body["message"] == error["message"], body
    assert sorted(error) == ["code", "details", "message"], body
    assert error["code"] == code, body
    assert isinstance(error["message"], str), body
    assert error["message"].strip(), body
    assert isinstance(error["details"], dict), body
    for word in mentions:
        assert word.lower() in error["message"].lower(), (word, error["message"])
    return dict(error)
