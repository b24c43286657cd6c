"""MLBench's ``mlbench`` CLI (mlbench-core 3.0.0, unmodified): ``run``, ``status``, ``download``
and ``delete`` against a real ``distbench serve``, with and without a token."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.backends.local_helpers import wait_for
from tests.mlbench.conftest import Dashboard, MLBench

# MLBench's CLI opens its last-answers file without closing it (pickle.load(open(...))): the
# leaked handle's ResourceWarning is MLBench's, not distbench's.
# Its ApiClient.post_metric uses datetime.utcnow(), deprecated from Python 3.12.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
    "ignore:datetime.datetime.utcnow:DeprecationWarning",
)

# The CLI's prompts: the benchmark (an index into MLBENCH_IMAGES), then the backend.
LOGREG_CHOICE = "2"  # PyTorch Linear Logistic Regression
GNMT_CHOICE = "4"  # PyTorch Machine Translation GNMT: distbench has no task for it
GLOO_CHOICE = "1"  # MLBENCH_BACKENDS = ["MPI", "GLOO", "NCCL"]


def mlbench_cli(mlbench: MLBench, dashboard: Dashboard, *args: str, answers: str = "") -> Result:
    result = CliRunner().invoke(
        mlbench.cli.cli_group,
        [*args, "--dashboard-url", dashboard.url],
        input=answers,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result


def runs_by_name(mlbench: MLBench, dashboard: Dashboard) -> dict[str, dict[str, Any]]:
    response = dashboard.client(mlbench).get_runs().result(timeout=60)
    assert response.status_code == 200, response.text
    return {run["name"]: run for run in response.json()}


def wait_for_state(mlbench: MLBench, dashboard: Dashboard, name: str, *states: str) -> None:
    def reached() -> bool:
        return runs_by_name(mlbench, dashboard)[name]["state"] in states

    wait_for(reached, what=f"run {name} to be {' or '.join(states)}", timeout_s=90)


@pytest.mark.usefixtures("mlbench_home")
def test_run_status_download_delete(mlbench: MLBench, dashboard: Dashboard, tmp_path: Path) -> None:
    # `mlbench run cli 1 2` posts two runs at once: the second waits its turn (QUEUED).
    started = mlbench_cli(
        mlbench, dashboard, "run", "cli", "1", "2", "--num-cpus", "2",
        answers=f"{LOGREG_CHOICE}\n{GLOO_CHOICE}\n",
    )  # fmt: skip
    assert "Run started with name cli-1" in started.output
    assert "Run started with name cli-2" in started.output
    # The CLI posts both at once (a thread pool): either may be first.
    runs = runs_by_name(mlbench, dashboard)
    states = {name: run["state"] for name, run in runs.items()}
    assert sorted(states.values()) in (["INITIALIZED", "QUEUED"], ["QUEUED", "STARTED"]), states
    first = next(name for name, state in states.items() if state != "QUEUED")
    second = "cli-2" if first == "cli-1" else "cli-1"
    assert runs[first]["benchmark"] == runs[second]["benchmark"] == "logreg"

    listed = mlbench_cli(mlbench, dashboard, "status")
    assert "cli-1" in listed.output
    assert "cli-2" in listed.output
    waiting = mlbench_cli(mlbench, dashboard, "status", first)
    assert "No Validation Loss Data yet" in waiting.output

    run_id = runs[first]["id"]
    client = dashboard.client(mlbench)
    for name, value in (("val_global_loss @ 0", 0.25), ("val_global_Prec@1 @ 0", 70.5)):
        assert client.post_metric(run_id, name, value).result(timeout=60).status_code == 201
    status = mlbench_cli(mlbench, dashboard, "status", first)
    assert "Current Global Loss: 0.25" in status.output
    assert "Current Global Precision: 70.50" in status.output

    output = tmp_path / "results.zip"
    mlbench_cli(mlbench, dashboard, "download", first, "--output", str(output))
    with zipfile.ZipFile(io.BytesIO(output.read_bytes())) as archive:
        loss = json.loads(archive.read("result_val_global_loss @ 0.json"))
        assert "official_result.txt" in archive.namelist()
    assert [point["value"] for point in loss] == ["0.25"]

    # delete aborts the run and keeps it; the queued run then starts, and is deleted too.
    mlbench_cli(mlbench, dashboard, "delete", first)
    wait_for_state(mlbench, dashboard, first, "ABORTED")
    wait_for_state(mlbench, dashboard, second, "INITIALIZED", "STARTED")
    mlbench_cli(mlbench, dashboard, "delete", second)
    wait_for_state(mlbench, dashboard, second, "ABORTED")
    assert set(runs_by_name(mlbench, dashboard)) == {"cli-1", "cli-2"}


@pytest.mark.usefixtures("mlbench_home")
def test_run_of_an_image_without_a_task_prints_the_servers_message(
    mlbench: MLBench, dashboard: Dashboard
) -> None:
    refused = mlbench_cli(
        mlbench, dashboard, "run", "gnmt", "1", answers=f"{GNMT_CHOICE}\n{GLOO_CHOICE}\n"
    )

    # The CLI prints response.json()["message"]: the server's reason, naming what it can run.
    assert "Couldn't start run:" in refused.output
    assert "mlbench/pytorch-epsilon-logistic-regression-all-reduce" in refused.output
    assert runs_by_name(mlbench, dashboard) == {}
