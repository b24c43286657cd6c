"""The same seed and worker count give the same loss curve on CPU: two runs of a task in fresh
worker processes (gloo, 2 ranks) report identical values, and another seed does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.distributed import TaskRun, run_task

# Every value that depends only on the seed (timings and throughput do not).
CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "batch_loss")

# Small runs that never reach an accuracy of 1.0, so each trains all its epochs.
SMALL_RUNS: dict[str, dict[str, Any]] = {
    "digits": {"max_epochs": 3, "target_accuracy": 1.0},
    "logreg": {
        "max_epochs": 3,
        "target_accuracy": 1.0,
        "synthetic_samples": 2_000,
        "synthetic_features": 100,
        "batch_size": 50,
    },
}


def curves(run: TaskRun) -> dict[str, list[float]]:
    return {name: run.series(name) for name in CURVES}


@pytest.mark.parametrize("benchmark", sorted(SMALL_RUNS))
def test_same_seed_same_curve_other_seed_other_curve(benchmark: str, tmp_path: Path) -> None:
    options = SMALL_RUNS[benchmark]

    first = curves(run_task(benchmark, {**options, "seed": 11}, world_size=2, tmp_path=tmp_path))
    again = curves(run_task(benchmark, {**options, "seed": 11}, world_size=2, tmp_path=tmp_path))
    other = curves(run_task(benchmark, {**options, "seed": 12}, world_size=2, tmp_path=tmp_path))

    assert len(first["train_loss"]) == 3
    assert all(first[name] for name in CURVES), first
    assert first == again  # exactly equal, value for value
    assert first["train_loss"] != other["train_loss"]
    assert first["batch_loss"] != other["batch_loss"]
