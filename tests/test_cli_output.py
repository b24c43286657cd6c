"""What the CLI prints: for scripts, piped tables are not cut to 80 columns and ``--json`` prints
the API's shapes; for people, ``serve`` names the dashboard's address first. The console script
runs in a subprocess, so its stdout is a pipe, as in ``distbench runs | grep``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.api.helpers import start_run
from tests.conftest import RunningServer, free_port
from tests.test_cli import clean_env, command, distbench, wait_for_health


def test_piped_runs_keep_whole_cells(tmp_path: Path, server: RunningServer) -> None:
    name = "a run whose name is longer than a terminal of eighty columns is wide"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        run = start_run(http, name=name, num_workers=1, benchmark="allreduce")

        result = distbench(tmp_path, "runs", "--url", server.url)
        state = http.get(f"/api/runs/{run['id']}/").json()["state"]

    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    (line,) = [line for line in result.stdout.splitlines() if name in line]
    assert state in line
    assert "allreduce" in line


def test_runs_and_show_json_are_the_apis_runs(tmp_path: Path, server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        start_run(http, num_workers=1)
        api_runs = http.get("/api/runs/").json()

    listed = distbench(tmp_path, "runs", "--json", "--url", server.url)
    shown = distbench(tmp_path, "show", str(api_runs[0]["id"]), "--json", "--url", server.url)

    assert listed.returncode == 0, listed.stderr
    assert [run["id"] for run in json.loads(listed.stdout)] == [run["id"] for run in api_runs]
    assert json.loads(listed.stdout)[0].keys() == api_runs[0].keys()
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == api_runs[0]["id"]
    assert json.loads(shown.stdout).keys() == api_runs[0].keys()


def test_benchmarks_json_is_the_apis_listing(tmp_path: Path, server: RunningServer) -> None:
    api_tasks = httpx.get(f"{server.url}/api/benchmarks", timeout=30).json()

    result = distbench(tmp_path, "benchmarks", "--json", "--url", server.url)

    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)
    assert [task["name"] for task in tasks] == [task["name"] for task in api_tasks]
    by_name = {task["name"]: task for task in tasks}
    for task in api_tasks:
        assert by_name[task["name"]]["defaults"] == task["defaults"]
        assert by_name[task["name"]]["options"] == task["options"]


def test_serve_prints_the_dashboard_address_first_then_the_apis(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = f"sqlite:///{tmp_path / 'distbench.db'}"
    args = ("serve", "--port", str(port), "--database-url", database, "--log-level", "warning")
    with subprocess.Popen(
        command(*args), env=clean_env(tmp_path), stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            wait_for_health(f"{url}/api/health", server)
        finally:
            server.terminate()
            output, _ = server.communicate(timeout=30)

    lines = output.splitlines()
    assert lines[0] == f"dashboard: {url}/", output
    assert lines[1].startswith(f"API: {url}/api/"), output
