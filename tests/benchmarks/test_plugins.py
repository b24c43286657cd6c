"""Benchmark tasks from plugins: the example plugin (installed into the test environment by
``scripts/setup --test``, as a user installs one) is listed and runs like a built-in task; broken
plugins are named with their reason and stop nothing else."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from distbench.benchmarks import registry
from tests.api.helpers import client
from tests.backends.local_helpers import LocalServers, run_metric_names, wait_for_state
from tests.conftest import RunningServer, StartServer

BROKEN_ENTRY_POINTS = {
    "no-such-module": "distbench_no_such_plugin.spec:SPEC",
    "not-a-spec": "broken_plugin_tasks:NOT_A_SPEC",
    "bad-options": "broken_plugin_tasks:BAD_OPTIONS",
    "required-option": "broken_plugin_tasks:REQUIRED_OPTION",
    "misnamed": "broken_plugin_tasks:MISNAMED",
    "digits": "broken_plugin_tasks:TAKES_DIGITS",
}


@pytest.fixture
def broken_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution (a dist-info folder on sys.path, as pip leaves one) whose
    entry points are broken in every way a plugin can be."""
    site = tmp_path / "site"
    info = site / "broken_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in BROKEN_ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text(f"[distbench.benchmarks]\n{lines}")
    (site / "broken_plugin_tasks.py").write_text(
        textwrap.dedent(
            """
            from collections.abc import Callable

            from distbench.benchmarks import BenchmarkSpec, TaskOptions

            class Unschemable(TaskOptions):
                hook: Callable[[], int] = print  # no JSON Schema for a function

            class Required(TaskOptions):
                learning_rate: float  # no default: a run with no options would be invalid

            NOT_A_SPEC = {"name": "not-a-spec"}
            BAD_OPTIONS = BenchmarkSpec("bad-options", "x", Unschemable, "m:run")
            REQUIRED_OPTION = BenchmarkSpec("required-option", "x", Required, "m:run")
            MISNAMED = BenchmarkSpec("something-else", "x", TaskOptions, "m:run")
            TAKES_DIGITS = BenchmarkSpec("digits", "x", TaskOptions, "m:run")
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    yield
    monkeypatch.undo()
    registry.reload()


def test_the_installed_plugin_is_listed_with_where_it_comes_from(server: RunningServer) -> None:
    with client(server) as http:
        tasks = {task["name"]: task for task in http.get("/api/benchmarks").json()}
    blobs = tasks["blobs"]
    assert blobs["status"] == "ok"
    assert blobs["builtin"] is False
    assert blobs["source"] == "distbench-example-plugin 0.1.0"
    assert blobs["error"] is None
    assert blobs["defaults"]["target_accuracy"] == 0.95
    assert blobs["options"]["properties"]["classes"]["type"] == "integer"
    assert tasks["digits"]["builtin"] is True
    assert tasks["digits"]["source"].startswith("distbench ")


def test_a_plugin_tasks_options_are_checked_like_a_builtin_tasks(server: RunningServer) -> None:
    with client(server) as http:
        bad = http.post(
            "/api/runs/",
            json={"name": "x", "num_workers": 1, "benchmark": "blobs", "options": {"classes": 1}},
        )
        assert bad.status_code == 400
        assert "options.classes" in bad.json()["error"]["message"]
        good = http.post(
            "/api/runs/", json={"name": "x", "num_workers": 1, "benchmark": "blobs"}
        ).json()
    assert good["benchmark"] == "blobs"
    assert good["options"]["samples"] == 4000  # the plugin's defaults, stored with the run


@pytest.mark.usefixtures("broken_plugins")
def test_broken_plugins_are_reported_by_name_and_stop_nothing(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="distbench.benchmarks.registry"):
        server = start_server()
    with client(server) as http:
        listed = http.get("/api/benchmarks").json()
        broken = {t["name"]: t for t in listed if t["status"] == "broken"}
        assert set(broken) == set(BROKEN_ENTRY_POINTS)
        errors = {name: task["error"] for name, task in broken.items()}
        assert "ModuleNotFoundError" in errors["no-such-module"]
        assert "not a distbench.benchmarks.BenchmarkSpec" in errors["not-a-spec"]
        assert "JSON Schema" in errors["bad-options"]
        assert "needs a default" in errors["required-option"]
        assert "'something-else'" in errors["misnamed"]
        assert "already taken by distbench" in errors["digits"]
        assert all(t["source"] == "broken-plugin 1.0" for t in broken.values())
        working = {t["name"] for t in listed if t["status"] == "ok"}
        assert {"digits", "allreduce", "logreg", "resnet20-cifar10", "blobs"} <= working
        # The built-in digits keeps its name; the plugin that wanted it is the broken one.
        assert next(t for t in listed if t["name"] == "digits" and t["status"] == "ok")["builtin"]

        refused = http.post(
            "/api/runs/", json={"name": "x", "num_workers": 1, "benchmark": "no-such-module"}
        )
        assert refused.status_code == 400
        assert "broken" in refused.json()["error"]["message"]
        assert http.post("/api/runs/", json={"name": "x", "num_workers": 1}).status_code == 200
    logged = " ".join(record.getMessage() for record in caplog.records)
    for name in BROKEN_ENTRY_POINTS:
        assert repr(name) in logged


def test_a_plugin_task_runs_to_finished_on_real_workers(local_servers: LocalServers) -> None:
    server = local_servers.start()
    with server.client() as http:
        run = http.post(
            "/api/runs/",
            json={"name": "blobs", "num_workers": 2, "benchmark": "blobs", "num_cpus": 0.5},
        ).json()
        ended = wait_for_state(http, run["id"], "FINISHED", timeout_s=120)
        result = ended["job_metadata"]["result"]
        assert result["target_reached"] is True
        assert result["time_to_accuracy_s"] > 0
        assert result["compute_s"] > 0
        assert result["communication_s"] > 0
        metrics = run_metric_names(http, run["id"])
        assert float(metrics["val_accuracy"][-1]["value"]) >= 0.95
        assert {"epoch", "train_loss", "samples_per_s", "time_to_accuracy_s"} <= set(metrics)
        logs = http.get(f"/api/runs/{run['id']}/logs").json()["logs"]
    assert len(logs) == 2
