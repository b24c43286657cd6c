"""What the server reads: the task's name, description and options. No torch here: the server
lists and checks tasks without importing it; workers import ``train`` when they run."""

from __future__ import annotations

from pydantic import Field

from distbench.benchmarks import BenchmarkSpec, TaskOptions


class BlobsOptions(TaskOptions):
    seed: int = Field(default=0, ge=0)
    samples: int = Field(default=4000, ge=100, le=1_000_000)
    features: int = Field(default=20, ge=2, le=1000)
    classes: int = Field(default=4, ge=2, le=100)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.1, gt=0)
    max_epochs: int = Field(default=30, ge=1)
    target_accuracy: float = Field(default=0.95, gt=0, le=1)


SPEC = BenchmarkSpec(
    name="blobs",
    description="Softmax regression on seeded Gaussian blobs, data-parallel (an example plugin).",
    options=BlobsOptions,
    entry="distbench_example_plugin.train:run",
)
