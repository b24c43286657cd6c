"""distbench's overhead: the same model, data and batch trained by a plain torch.distributed DDP
script and by distbench (through the API, workers under their limits), and the cost of metric
reporting (distbench's task with a point posted every step, against the same task silent).

    .venv/bin/python bench/overhead.py [--record]

ResNet-20 on synthetic CIFAR-shaped images, 2 workers, 32 images per worker per step, one CPU
thread each, 48 steps an epoch; samples/s of the epochs after the first (plain: after 4 warm-up
steps).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import httpx

from live_server import live_server, wait_for_end
from sections import write_section

WORKER = Path(__file__).with_name("overhead_worker.py")
SHAPE = {"samples": 8192, "batch": 32, "steps": 48, "epochs": 4}


def torchrun(mode: str, *extra: str) -> float:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(WORKER),
        mode,
        *(f"--{key}={value}" for key, value in SHAPE.items()),
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("{"))
    return float(json.loads(line)["samples_per_s"])


def through_the_api(base: str) -> tuple[float, int]:
    body = {
        "name": "overhead: resnet20 synthetic",
        "num_workers": 2,
        "num_cpus": 1,
        "benchmark": "resnet20-cifar10",
        "options": {
            "dataset": "synthetic",
            "synthetic_samples": SHAPE["samples"],
            "batch_size": SHAPE["batch"],
            "max_steps_per_epoch": SHAPE["steps"],
            "max_epochs": SHAPE["epochs"],
        },
    }
    run = httpx.post(f"{base}/api/runs/", json=body, timeout=30).json()
    ended = wait_for_end(base, run["id"], timeout_s=600)
    if ended["state"] != "FINISHED":
        raise RuntimeError(f"the distbench run ended {ended['state']}: {ended['job_metadata']}")
    series = httpx.get(
        f"{base}/api/metrics/{run['id']}/",
        params={"metric_type": "run", "metric_filter": "samples_per_s"},
    ).json()["samples_per_s"]
    rates = [float(point["value"]) for point in series[1:]]
    return statistics.mean(rates), int(run["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    plain = torchrun("plain")
    print(f"plain DDP script:            {plain:8.1f} samples/s", flush=True)
    quiet = torchrun("task-quiet")
    print(f"distbench task, silent:      {quiet:8.1f} samples/s", flush=True)
    with live_server() as base:
        api, run_id = through_the_api(base)
        print(f"distbench run via the API:   {api:8.1f} samples/s", flush=True)
        reporting = torchrun("task-reporting", f"--server-url={base}", f"--run-id={run_id}")
        print(f"distbench task, reporting:   {reporting:8.1f} samples/s", flush=True)
    ratio = api / plain
    cost = 1 - reporting / quiet
    print(f"distbench / plain DDP: {ratio:.3f} (target >= 0.97)")
    print(f"cost of reporting a point every step: {cost:.2%} (target <= 1 %)")
    if args.record:
        write_section(
            "Overhead",
            "\n".join(
                [
                    "## Overhead",
                    "",
                    f"Measured {dt.date.today()} on {os.cpu_count()} cores with "
                    "`.venv/bin/python bench/overhead.py --record`: ResNet-20 on synthetic "
                    "CIFAR-shaped images, 2 workers, 32 images per worker per step, one thread "
                    "each, 48 steps an epoch; samples/s of the epochs after the first (plain: "
                    "48 steps after 4 warm-up steps). Runs differ by about 5 % on these shared "
                    "cores; an earlier run gave plain 411, API 492, reporting -3.4 %.",
                    "",
                    "| | samples/s |",
                    "|---|---|",
                    f"| plain torch.distributed DDP script (torchrun) | {plain:.1f} |",
                    f"| distbench run through the API (1 CPU quota each) | {api:.1f} |",
                    f"| distbench's task, no reporting | {quiet:.1f} |",
                    f"| distbench's task, a metric point posted every step | {reporting:.1f} |",
                    "",
                    f"distbench / plain: **{ratio:.3f}** (target ≥ 0.97); cost of reporting: "
                    f"**{cost:.2%}** (target ≤ 1 %).",
                    "",
                ]
            ),
        )


if __name__ == "__main__":
    main()
