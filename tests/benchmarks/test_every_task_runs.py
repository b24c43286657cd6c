"""Every task runs through the CLI on one and on two workers and posts its metrics."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.backends.local_helpers import LocalServers

MiB = 1024 * 1024
# Each task, with options that keep the run to a few seconds.
QUICK_OPTIONS = {
    "digits": ["max_epochs=2"],
    "logreg": ["max_epochs=2", "synthetic_samples=2000", "synthetic_features=200"],
    "allreduce": ["sizes_bytes=[1024,1048576]", "repetitions=2"],
    "resnet20-cifar10": [
        "dataset=synthetic",
        "synthetic_samples=64",
        "batch_size=16",
        "max_epochs=1",
    ],
}
# What each task reports, at least.
REPORTS = {
    "digits": {"train_loss", "val_accuracy", "samples_per_s", "communication_s"},
    "logreg": {"train_loss", "val_accuracy", "samples_per_s", "communication_s"},
    "allreduce": {"allreduce_time_s", "bus_bandwidth_mbit"},
    "resnet20-cifar10": {"train_loss", "val_accuracy", "samples_per_s", "communication_s"},
}


@pytest.mark.parametrize("benchmark", sorted(QUICK_OPTIONS))
def test_task_runs_on_one_and_two_workers_from_the_cli(
    local_servers: LocalServers, benchmark: str
) -> None:
    server = local_servers.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTBENCH_")}
    for workers in (1, 2):
        options = [arg for option in QUICK_OPTIONS[benchmark] for arg in ("-o", option)]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "distbench",
                "run",
                "--benchmark",
                benchmark,
                "--workers",
                str(workers),
                "--wait",
                "--url",
                server.url,
                *options,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "FINISHED" in result.stdout
        run = httpx.get(f"{server.url}/api/runs/").json()[0]
        assert run["benchmark"] == benchmark
        assert run["num_workers"] == workers
        assert run["state"] == "FINISHED"
        series = httpx.get(f"{server.url}/api/metrics/{run['id']}/", params={"metric_type": "run"})
        reported = set(series.json())
        expected = REPORTS[benchmark]
        if benchmark == "allreduce" and workers == 1:
            # One worker's all-reduce crosses no link: it has a time but no bus bandwidth.
            expected = expected - {"bus_bandwidth_mbit"}
            assert "bus_bandwidth_mbit" not in reported
        assert expected <= reported, sorted(reported)
