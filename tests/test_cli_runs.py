"""``distbench run --queue`` and ``distbench serve --queue-runs``, run as users run them (the
console script in a subprocess)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.api.helpers import start_run
from tests.conftest import RunningServer, free_port
from tests.test_cli import assert_one_line_refusal, clean_env, command, distbench, wait_for_health


def test_run_with_queue_waits_its_turn_behind_the_active_run(
    tmp_path: Path, server: RunningServer
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        active = start_run(http, name="active", num_workers=1)

        refused = distbench(tmp_path, "run", "--url", server.url, "--workers", "1")
        queued = distbench(tmp_path, "run", "--url", server.url, "--workers", "1", "--queue")

        assert_one_line_refusal(refused, f"run {active['id']}", "queue")
        assert queued.returncode == 0, queued.stderr
        newest = http.get("/api/runs/").json()[0]
        assert newest["state"] == "QUEUED"
        assert f"run {newest['id']} queued" in queued.stdout
        assert [run["id"] for run in http.get("/api/runs/").json()] == [newest["id"], active["id"]]

        listed = distbench(tmp_path, "runs", "--url", server.url)
        assert listed.returncode == 0, listed.stderr
        assert "QUEUED" in listed.stdout


def test_serve_with_queue_runs_queues_runs_that_do_not_ask(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = f"sqlite:///{tmp_path / 'distbench.db'}"
    args = ("serve", "--port", str(port), "--database-url", database, "--queue-runs")
    with subprocess.Popen(
        command(*args, "--log-level", "warning"),
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as server:
        try:
            wait_for_health(f"{url}/api/health", server)
            with httpx.Client(base_url=url, timeout=30) as http:
                endless = {"target_accuracy": 1.0, "max_epochs": 10_000}
                first = start_run(http, name="first", num_workers=1, options=endless)
                second = start_run(http, name="second", num_workers=1)
                refused = http.post(
                    "/api/runs/", json={"name": "no", "num_workers": 1, "queue": False}
                )
                for run in (second, first):
                    http.delete(f"/api/runs/{run['id']}/")
        finally:
            server.terminate()
            output, _ = server.communicate(timeout=30)

    assert second["state"] == "QUEUED", output
    assert refused.status_code == 409, refused.text
    assert "Traceback" not in output
