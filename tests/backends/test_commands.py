"""Custom command runs: a user's own program as each worker, with the environment, limits, pods,
metrics, logs and failure handling of a task run; refused unless the server allows it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from pydantic import ValidationError

from distbench.backends import placeholders
from distbench.backends.local.state import WorkerState
from distbench.settings import Settings
from distbench.worker.command import run as run_command
from distbench.worker.status import StatusFiles
from tests.backends.local_helpers import (
    IS_ROOT,
    LocalServer,
    LocalServers,
    assert_cleaned_up,
    is_running,
    pod_series,
    requires_root,
    run_metric_names,
    run_state_file,
    wait_for,
    wait_for_state,
    worker_pids,
)
from tests.conftest import StartServer

TOKEN = "command-test-token"
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = ["python", "examples/custom_training.py", "--lr", "0.1"]
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def authed(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def command_run(http: httpx.Client, command: list[str], **fields: Any) -> httpx.Response:
    return http.post(
        "/api/runs/", json={"name": "mine", "num_workers": 2, "command": command, **fields}
    )


# -- refusals (fake backend) ---------------------------------------------------------------------
def test_commands_are_forbidden_unless_the_server_allows_them(start_server: StartServer) -> None:
    for server in (start_server(), start_server(token=TOKEN)):
        with authed(server.url) as http:
            response = command_run(http, ["python", "train.py"], working_dir=str(REPO))
            assert response.status_code == 403
            error = response.json()["error"]
            assert error["code"] == "forbidden"
            assert "--allow-commands" in error["message"]
            assert "--token" in error["message"]
            assert http.get("/api/runs/").json() == []


def test_allowing_commands_needs_a_token() -> None:
    with pytest.raises(ValidationError, match="needs a token"):
        Settings(allow_commands=True)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"working_dir": "/no/such/dir"}, "does not exist"),
        ({"working_dir": __file__}, "is not a directory"),
        ({"working_dir": "relative/dir"}, "must be an absolute path"),
        ({"benchmark": "digits"}, "either a benchmark or a command"),
        ({"command": []}, "command"),
        ({"command": [""]}, "must start with the program"),
        ({"command": "python train.py"}, "command"),
    ],
)
def test_bad_command_runs_are_400s_naming_the_problem(
    start_server: StartServer, fields: dict[str, Any], needle: str
) -> None:
    server = start_server(token=TOKEN, allow_commands=True)
    with authed(server.url) as http:
        body = {"name": "x", "num_workers": 1, "command": ["python", "train.py"], **fields}
        response = http.post("/api/runs/", json=body)
        assert response.status_code == 400, response.text
        assert needle in response.json()["error"]["message"]
        assert http.get("/api/runs/").json() == []


def test_working_dir_without_a_command_is_a_400(start_server: StartServer) -> None:
    server = start_server(token=TOKEN, allow_commands=True)
    with authed(server.url) as http:
        response = http.post(
            "/api/runs/", json={"name": "x", "num_workers": 1, "working_dir": str(REPO)}
        )
        assert response.status_code == 400
        assert "working_dir" in response.json()["error"]["message"]


def test_a_command_run_is_stored_with_its_command(start_server: StartServer) -> None:
    server = start_server(token=TOKEN, allow_commands=True)
    with authed(server.url) as http:
        response = command_run(http, EXAMPLE, working_dir=str(REPO), options={"anything": [1, 2]})
        assert response.status_code == 200, response.text
        run = http.get(f"/api/runs/{response.json()['id']}/").json()
    assert run["command"] == EXAMPLE
    assert run["working_dir"] == str(REPO)
    assert run["benchmark"] == "command"
    assert run["options"] == {"anything": [1, 2]}  # the command's own, passed on unchecked


# -- real workers --------------------------------------------------------------------------------
def command_server(local_servers: LocalServers) -> LocalServer:
    return local_servers.start(token=TOKEN, allow_commands=True)


@sqlite_only
def test_a_command_runs_in_its_directory_with_the_workers_environment(
    local_servers: LocalServers, tmp_path: Path
) -> None:
    server = command_server(local_servers)
    script = (
        "import os, distbench; "
        "print('cwd', os.getcwd()); "
        "print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE']); "
        "print('master', os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']); "
        "print('token', bool(os.environ.get('DISTBENCH_TOKEN')))"
    )
    with authed(server.url) as http:
        response = command_run(http, ["python", "-c", script], working_dir=str(tmp_path))
        assert response.status_code == 200, response.text
        run_id = response.json()["id"]
        wait_for_state(http, run_id, "FINISHED")
        logs = http.get(f"/api/runs/{run_id}/logs").json()["logs"]
    assert len(logs) == 2
    for rank, (pod, text) in enumerate(sorted(logs.items())):
        assert pod.endswith(f"-{rank}")
        assert f"cwd {tmp_path}" in text
        assert f"rank {rank} of 2" in text
        assert "token True" in text


@sqlite_only
def test_mlbench_placeholders_in_a_commands_arguments_are_filled_in_per_worker(
    local_servers: LocalServers,
) -> None:
    server = command_server(local_servers)
    script = "import json, sys; print('argv', json.dumps(sys.argv[1:]))"
    arguments = ["--run_id", "{run_id}", "--rank", "{rank}", "--hosts", "{hosts}"]
    # Only the four names; other braces (a snippet's dict, attribute access) stay as they are.
    arguments += ["--backend", "{backend}", "{other}", "{rank.__class__}", "{0}", "r{rank}/{rank}"]
    with authed(server.url) as http:
        response = command_run(http, ["python", "-c", script, *arguments])
        assert response.status_code == 200, response.text
        run = wait_for_state(http, response.json()["id"], "FINISHED")
        logs = http.get(f"/api/runs/{run['id']}/logs").json()["logs"]
    workers = sorted(run_state_file(server.settings.data_dir, run["job_id"]).workers, key=rank_of)
    # The namespaces' addresses when the server can make them (root), else loopback for all.
    hosts = ",".join(worker.ip for worker in workers)
    assert len(workers) == 2
    if not IS_ROOT:
        assert hosts == "127.0.0.1,127.0.0.1"
    for worker in workers:
        line = next(x for x in logs[worker.pod_name].splitlines() if x.startswith("argv "))
        assert json.loads(line.removeprefix("argv ")) == [
            *["--run_id", str(run["id"]), "--rank", str(worker.rank), "--hosts", hosts],
            *["--backend", "gloo", "{other}", "{rank.__class__}", "{0}"],
            f"r{worker.rank}/{worker.rank}",
        ]


def rank_of(worker: WorkerState) -> int:
    return worker.rank


def test_only_the_four_placeholders_are_expanded() -> None:
    values = {"run_id": "7", "rank": "1", "hosts": "a,b", "backend": "gloo"}
    assert placeholders.expand("{run_id}:{rank}:{hosts}:{backend}", values) == "7:1:a,b:gloo"
    for untouched in ("{rank.__class__}", "{hosts[0]}", "{RANK}", "{ rank }", "{}", "{{x}}"):
        assert placeholders.expand(untouched, values) == untouched


@sqlite_only
def test_a_failing_command_fails_the_run_with_its_exit_code_and_output(
    local_servers: LocalServers,
) -> None:
    server = command_server(local_servers)
    script = "import os, sys; print('giving up on rank', os.environ['RANK']); sys.exit(3)"
    with authed(server.url) as http:
        run_id = command_run(http, ["python", "-c", script]).json()["id"]
        run = wait_for_state(http, run_id, "FAILED")
    assert "exited with code 3" in run["job_metadata"]["error"]
    tails = " ".join(run["job_metadata"]["worker_log_tails"].values())
    assert "giving up on rank" in tails


@sqlite_only
def test_a_program_that_does_not_exist_fails_the_run_saying_so(
    local_servers: LocalServers,
) -> None:
    server = command_server(local_servers)
    with authed(server.url) as http:
        run_id = command_run(http, ["no-such-program-distbench"]).json()["id"]
        run = wait_for_state(http, run_id, "FAILED")
    assert "exited with code 127" in run["job_metadata"]["error"]
    assert "command not found: 'no-such-program-distbench'" in " ".join(
        run["job_metadata"]["worker_log_tails"].values()
    )


@sqlite_only
def test_aborting_a_command_run_stops_the_command_itself(local_servers: LocalServers) -> None:
    server = command_server(local_servers)
    sleeper = ["python", "-c", "import time; time.sleep(600)"]
    with authed(server.url) as http:
        run = command_run(http, sleeper).json()
        wait_for_state(http, run["id"], "STARTED")
        wrappers = worker_pids(server.settings.data_dir, run["job_id"])
        commands = [
            child.pid for pid in wrappers.values() for child in psutil.Process(pid).children()
        ]
        assert len(commands) == 2
        assert http.delete(f"/api/runs/{run['id']}/").json()["state"] == "ABORTED"
    wait_for(
        lambda: not any(is_running(pid) for pid in [*wrappers.values(), *commands]),
        what="the commands and their wrappers to exit",
    )


@requires_root
@sqlite_only
def test_the_example_script_trains_on_two_capped_workers_and_reports(
    local_servers: LocalServers,
) -> None:
    server = command_server(local_servers)
    with authed(server.url) as http:
        response = command_run(http, EXAMPLE, working_dir=str(REPO), max_bandwidth=100, num_cpus=1)
        assert response.status_code == 200, response.text
        run = wait_for_state(http, response.json()["id"], "FINISHED", timeout_s=180)
        metrics = run_metric_names(http, run["id"])
        pods = [p for p in http.get("/api/pods/").json() if p["name"].startswith("distbench")]
        series = pod_series(http, f"distbench-worker-{run['id']}-0")
        logs = http.get(f"/api/runs/{run['id']}/logs").json()["logs"]
    assert {"epoch", "train_loss", "val_accuracy", "compute_s", "communication_s"} <= set(metrics)
    assert "time_to_accuracy_s" in metrics
    assert float(metrics["val_accuracy"][-1]["value"]) >= 0.95
    result = run["job_metadata"]["result"]
    assert result["target_reached"] is True
    assert result["communication_s"] > 0
    assert result["limits"]["max_bandwidth_mbit"] == 100
    assert "HTB 100 Mbit/s" in run["job_metadata"]["limits"]["bandwidth_limit"]
    assert len(pods) >= 2
    assert "container_network_transmit_bytes_total" in series
    assert "container_cpu_usage_seconds_total" in series
    assert "target 0.95 reached" in logs[f"distbench-worker-{run['id']}-0"]
    assert_cleaned_up(server.settings.data_dir, run["job_id"])


def test_the_wrapper_reports_a_signal_as_a_shell_does() -> None:
    code = run_command(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 15)"],
        StatusFiles(None, "p"),
    )
    assert code == 128 + 15
