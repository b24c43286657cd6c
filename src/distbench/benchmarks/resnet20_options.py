from __future__ import annotations

from typing import Literal

from pydantic import Field

from distbench.benchmarks.base import BenchmarkSpec, TaskOptions
from distbench.benchmarks.paths import DataDir


class Resnet20Options(TaskOptions):
    """Options of ``resnet20-cifar10`` (MLBench task 1a)."""

    seed: int = Field(default=0, ge=0)
    dataset: Literal["cifar10", "synthetic"] = Field(
        default="cifar10", description="cifar10 (read or downloaded) or synthetic (throughput)."
    )
    data_dir: DataDir = Field(
        default="cifar10",
        description="Where CIFAR-10 is, or is downloaded to (cifar-10-batches-py/ inside): a "
        "folder under the server's data root (relative paths are taken from it).",
    )
    download: bool = Field(default=True, description="Download CIFAR-10 when it is missing.")
    synthetic_samples: int = Field(default=5_120, ge=10, le=1_000_000)
    batch_size: int = Field(default=128, ge=1, le=4096, description="Images per worker per step.")
    learning_rate: float = Field(
        default=0.1, gt=0, description="Per-worker base rate; scaled by the number of workers."
    )
    warmup_epochs: int = Field(default=5, ge=0, description="Linear warm-up to the scaled rate.")
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    max_epochs: int = Field(default=164, ge=1, le=10_000)
    target_accuracy: float = Field(default=0.80, gt=0, le=1, description="80 %; 70 % light.")
    max_steps_per_epoch: int | None = Field(
        default=None, ge=1, description="Cut epochs short (smoke tests, throughput runs)."
    )
    report_every_steps: int = Field(default=20, ge=1)


# Registered under the entry point group ``distbench.benchmarks`` (pyproject.toml), as a plugin's
# task is: this module is torch-free, so the server lists and checks the task without torch.
SPEC = BenchmarkSpec(
    name="resnet20-cifar10",
    description="ResNet-20 (0.27 M parameters) on CIFAR-10, SGD with momentum, 128 images "
    "per worker, target 80 % top-1 (MLBench's task 1a); dataset=synthetic for throughput.",
    options=Resnet20Options,
    entry="distbench.benchmarks.resnet20:run",
)
