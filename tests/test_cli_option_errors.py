"""Refusals of what a user asked a run or a comparison to do say how to ask it right: task
options in ``-o`` syntax with the task's option names, and ``compare`` of one task's runs by a
series they have. The console script runs in a subprocess against a fake-backend server."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.helpers import post_batch, start_run
from tests.conftest import RunningServer
from tests.test_cli import assert_one_line_refusal, distbench


def test_a_list_option_given_one_value_shows_the_list_syntax(
    tmp_path: Path, server: RunningServer
) -> None:
    result = distbench(
        tmp_path,
        "run",
        "--url",
        server.url,
        "--benchmark",
        "allreduce",
        "-o",
        "sizes_bytes=1048576",
    )

    assert result.returncode == 2
    assert_one_line_refusal(result, "sizes_bytes", "list", "-o 'sizes_bytes=[1048576]'")


def test_an_unknown_option_lists_the_tasks_option_names(
    tmp_path: Path, server: RunningServer
) -> None:
    names = httpx.get(f"{server.url}/api/benchmarks", timeout=30).json()
    digits = next(task for task in names if task["name"] == "digits")

    result = distbench(tmp_path, "run", "--url", server.url, "-o", "foo=1")

    assert result.returncode == 2
    assert_one_line_refusal(result, "foo", "digits", *digits["options"]["properties"])


def test_compare_refuses_runs_of_different_tasks(tmp_path: Path, server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ids = []
        for task in ("digits", "allreduce"):
            run = start_run(http, num_workers=1, benchmark=task)
            http.delete(f"/api/runs/{run['id']}/")
            ids.append(str(run["id"]))

    result = distbench(tmp_path, "compare", *ids, "--url", server.url)

    assert result.returncode == 2
    assert_one_line_refusal(result, "one task", "digits", "allreduce")


def test_compare_refuses_an_unknown_metric_naming_the_series_it_has(
    tmp_path: Path, server: RunningServer
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        run = start_run(http, num_workers=1)
        post_batch(http, [{"run_id": run["id"], "name": "val_accuracy", "value": "0.5"}])
        http.delete(f"/api/runs/{run['id']}/")

    result = distbench(
        tmp_path, "compare", str(run["id"]), "--metric", "val_acc", "--url", server.url
    )

    assert result.returncode == 2
    assert_one_line_refusal(result, "--metric 'val_acc'", "val_accuracy")
