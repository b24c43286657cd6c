"""What ``distbench run --wait`` and ``distbench show`` print when a run ends, run as users run
them (the console script in a subprocess, against a real server): each task's headline numbers,
and a failed run's cause in the failing worker's own words."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from distbench.cli.watch import failure_cause
from distbench.client import Run, RunState
from tests.api.helpers import post_batch, wait_for_state
from tests.backends.local_helpers import LocalServers
from tests.backends.local_helpers import sqlite_local_servers as sqlite_local_servers
from tests.conftest import RunningServer, StartServer
from tests.test_cli import clean_env, command

TOKEN = "results-test-token"
MIB = 2**20


def distbench(tmp_path: Path, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    # Wide, so that a row's text is on one line whatever the terminal (how output is cut when
    # piped is another test's subject).
    env = {**clean_env(tmp_path), "COLUMNS": "200"}
    return subprocess.Popen(
        command(*args),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    return process.returncode, stdout, stderr


def show(tmp_path: Path, server: RunningServer, run_id: int) -> str:
    code, stdout, stderr = finished(
        distbench(tmp_path, "show", str(run_id), "--url", server.url, "--token", TOKEN)
    )
    assert code == 0, stderr
    return stdout


def table_rows(output: str) -> dict[str, str]:
    """The result table's rows, ``{what: value}``."""
    cells = [line.split("│") for line in output.splitlines() if line.count("│") == 3]
    return {cell[1].strip(): cell[2].strip() for cell in cells}


def authed(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def newest_run(http: httpx.Client) -> dict[str, Any]:
    """The run a ``distbench run`` just started, once the server has it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = http.get("/api/runs/").json()
        if runs:
            newest: dict[str, Any] = runs[0]
            return newest
        time.sleep(0.1)
    raise AssertionError("distbench run started no run within 60 s")


def allreduce_points(run_id: int) -> list[dict[str, Any]]:
    """What the allreduce task reports on two workers, at two message sizes."""
    points = []
    for size, time_s, bus_mbit in ((MIB, 0.021, 47.5), (64 * MIB, 1.41, 95.2)):
        meta = json.dumps({"bytes": size, "dtype": "float32"})
        points.append({"run_id": run_id, "name": "allreduce_time_s", "value": time_s,
                       "metadata": meta})  # fmt: skip
        points.append({"run_id": run_id, "name": "bus_bandwidth_mbit", "value": bus_mbit,
                       "metadata": meta})  # fmt: skip
    return points


def test_run_wait_and_show_print_allreduce_bus_bandwidth_per_size_against_the_cap(
    tmp_path: Path, start_server: StartServer
) -> None:
    server = start_server(token=TOKEN)
    waiting = distbench(
        tmp_path, "run", "--benchmark", "allreduce", "--workers", "2", "--bandwidth", "100",
        "--wait", "--url", server.url, "--token", TOKEN,
    )  # fmt: skip
    with authed(server.url) as http:
        run = newest_run(http)
        wait_for_state(http, run["id"], "STARTED")
        post_batch(http, allreduce_points(run["id"]))
        server.fake.finish(run["id"])
        code, after_wait, stderr = finished(waiting)
        assert code == 0, stderr

    shown = show(tmp_path, server, run["id"])
    for output in (after_wait, shown):
        rows = table_rows(output)
        assert rows["all-reduce 1 MiB"] == (
            "21.000 ms, bus bandwidth 47.5 Mbit/s, 48% of the 100 Mbit/s cap"
        ), output
        assert rows["all-reduce 64 MiB"] == (
            "1410.000 ms, bus bandwidth 95.2 Mbit/s, 95% of the 100 Mbit/s cap"
        ), output


def test_show_prints_bus_bandwidth_without_a_cap_as_it_is(
    tmp_path: Path, start_server: StartServer
) -> None:
    server = start_server(token=TOKEN)
    with authed(server.url) as http:
        run_id = http.post(
            "/api/runs/", json={"name": "free", "num_workers": 2, "benchmark": "allreduce"}
        ).json()["id"]
        wait_for_state(http, run_id, "STARTED")
        post_batch(http, allreduce_points(run_id))
        server.fake.finish(run_id)
        wait_for_state(http, run_id, "FINISHED")

    shown = show(tmp_path, server, run_id)
    assert "all-reduce 64 MiB" in shown
    assert "bus bandwidth 95.2 Mbit/s" in shown
    assert "cap" not in shown


def test_show_prints_the_time_to_accuracy_a_command_run_declared(
    tmp_path: Path, start_server: StartServer
) -> None:
    server = start_server(token=TOKEN, allow_commands=True)
    with authed(server.url) as http:
        run_id = http.post(
            "/api/runs/",
            json={"name": "mine", "num_workers": 1, "command": ["python", "train.py"],
                  "working_dir": str(tmp_path)},
        ).json()["id"]  # fmt: skip
        wait_for_state(http, run_id, "STARTED")
        # What the worker session's target_reached() reports.
        post_batch(http, [{"run_id": run_id, "name": "time_to_accuracy_s", "value": 12.5,
                           "metadata": '{"epoch": 3}'}])  # fmt: skip
        server.fake.finish(run_id)
        result = wait_for_state(http, run_id, "FINISHED")["job_metadata"]["result"]
    assert result["time_to_accuracy_s"] == 12.5  # what `compare` shows

    shown = show(tmp_path, server, run_id)
    assert table_rows(shown)["time to accuracy"] == "12.50 s", shown


def test_a_command_run_from_the_wrong_directory_prints_why_it_failed(
    tmp_path: Path, sqlite_local_servers: LocalServers
) -> None:
    server = sqlite_local_servers.start(token=TOKEN, allow_commands=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    waiting = distbench(
        tmp_path, "run", "--command", "python train.py", "--workers", "1", "--wait",
        "--url", server.url, "--token", TOKEN, cwd=elsewhere,
    )  # fmt: skip
    code, after_wait, stderr = finished(waiting)
    assert code == 1, stderr
    with authed(server.url) as http:
        run_id = http.get("/api/runs/").json()[0]["id"]

    shown = show(tmp_path, server, run_id)
    for output in (after_wait, shown):
        lines = output.splitlines()
        cause = lines.index(f"last lines of distbench-worker-{run_id}-0:")
        assert "can't open file" in "\n".join(lines[cause + 1 :]), output
        assert "[Errno 2] No such file or directory" in output  # not eaten as markup
        assert lines[-1 if output is after_wait else -2] == (
            f"all of the workers' output: distbench logs {run_id}"
        ), output


def test_show_prints_the_end_of_the_worker_the_error_names(
    tmp_path: Path, start_server: StartServer
) -> None:
    server = start_server(token=TOKEN)
    with authed(server.url) as http:
        run_id = http.post("/api/runs/", json={"name": "two", "num_workers": 2}).json()["id"]
        wait_for_state(http, run_id, "STARTED")
        first, second = (f"distbench-worker-{run_id}-{rank}" for rank in (0, 1))
        server.fake.fail(
            run_id,
            f"worker {second} (rank 1) exited with code 1",
            log_tails={
                first: "stuck in a collective with a dead rank\n",
                second: "".join(f"line {n}\n" for n in range(1, 31)),
            },
        )
        wait_for_state(http, run_id, "FAILED")

    lines = show(tmp_path, server, run_id).splitlines()
    cause = lines.index(f"last lines of {second}:")
    assert lines[cause + 1 : cause + 16] == [f"  line {n}" for n in range(16, 31)]
    assert lines[cause + 16] == f"all of the workers' output: distbench logs {run_id}"
    assert not any("stuck in a collective" in line for line in lines)


def test_the_failing_worker_is_told_apart_from_one_whose_name_begins_its_name() -> None:
    metadata = {
        "error": "worker distbench-worker-7-10 (rank 10) exited with code 1",
        "worker_log_tails": {
            "distbench-worker-7-1": "an echo of rank 10's failure\n",
            "distbench-worker-7-10": "the cause\n",
        },
    }
    run = Run(id=7, name="wide", created_at=dt.datetime.now(dt.UTC), state=RunState.FAILED,
              job_id="job-7", job_metadata=metadata)  # fmt: skip
    assert failure_cause(run) == [
        "last lines of distbench-worker-7-10:",
        "  the cause",
        "all of the workers' output: distbench logs 7",
    ]


def test_a_real_allreduce_run_prints_its_bus_bandwidth_after_wait(
    tmp_path: Path, sqlite_local_servers: LocalServers
) -> None:
    server = sqlite_local_servers.start(token=TOKEN)
    waiting = distbench(
        tmp_path, "run", "--benchmark", "allreduce", "--workers", "2", "--wait",
        "-o", "sizes_bytes=[1024, 65536]", "-o", "repetitions=2",
        "--url", server.url, "--token", TOKEN,
    )  # fmt: skip
    code, after_wait, stderr = finished(waiting)
    assert code == 0, after_wait + stderr
    rows = table_rows(after_wait)
    for size in ("1 KiB", "64 KiB"):
        assert " ms, bus bandwidth " in rows[f"all-reduce {size}"], after_wait
        assert rows[f"all-reduce {size}"].endswith(" Mbit/s"), after_wait
