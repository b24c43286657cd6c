"""GET /api/benchmarks lists the tasks with their options; a run names one of them."""

from __future__ import annotations

from tests.api.helpers import client
from tests.conftest import RunningServer


def test_benchmarks_lists_every_task_with_defaults_and_schema(server: RunningServer) -> None:
    with client(server) as http:
        for path in ("/api/benchmarks", "/api/benchmarks/"):
            response = http.get(path)
            assert response.status_code == 200
            tasks = {task["name"]: task for task in response.json()}
            assert {"digits", "allreduce"} <= set(tasks)
        digits = tasks["digits"]
        assert digits["description"]
        assert digits["defaults"]["target_accuracy"] == 0.96
        assert digits["options"]["properties"]["seed"]["type"] == "integer"
        assert tasks["allreduce"]["defaults"]["sizes_bytes"][0] == 1024


def test_a_run_stores_the_tasks_complete_options(server: RunningServer) -> None:
    with client(server) as http:
        run = http.post(
            "/api/runs/", json={"name": "seeded", "num_workers": 1, "options": {"seed": 7}}
        ).json()
    assert run["options"]["seed"] == 7
    assert run["options"]["max_epochs"] == 60  # the default, recorded so the run can be repeated


def test_unknown_benchmark_and_bad_options_are_400s_naming_them(server: RunningServer) -> None:
    with client(server) as http:
        unknown = http.post("/api/runs/", json={"name": "x", "num_workers": 1, "benchmark": "nope"})
        assert unknown.status_code == 400
        assert "nope" in unknown.json()["error"]["message"]
        assert "digits" in unknown.json()["error"]["message"]
        bad = http.post(
            "/api/runs/", json={"name": "x", "num_workers": 1, "options": {"epochs": 3}}
        )
        assert bad.status_code == 400
        assert "options.epochs" in bad.json()["error"]["message"]
        assert http.get("/api/runs/").json() == []


def test_gpu_runs_are_refused_with_the_reason(server: RunningServer) -> None:
    with client(server) as http:
        response = http.post("/api/runs/", json={"name": "x", "num_workers": 1, "gpu": True})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "limit_unsupported"
        assert http.get("/api/runs/").json() == []
