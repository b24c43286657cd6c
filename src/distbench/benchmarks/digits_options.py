from __future__ import annotations

from pydantic import Field

from distbench.benchmarks.base import BenchmarkSpec, TaskOptions


class DigitsOptions(TaskOptions):
    """Options of the ``digits`` task (defaults reach the target in seconds on two CPU workers)."""

    seed: int = Field(default=0, ge=0, description="Seed of the model, split and shuffles.")
    batch_size: int = Field(default=32, ge=1, le=1024, description="Samples per worker per step.")
    learning_rate: float = Field(default=0.05, gt=0, le=10)
    hidden: int = Field(default=128, ge=4, le=4096, description="Hidden units of the MLP.")
    max_epochs: int = Field(default=60, ge=1, le=10_000)
    target_accuracy: float = Field(
        default=0.96, gt=0, le=1, description="Validation accuracy that ends the run."
    )
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    report_every_steps: int = Field(
        default=10, ge=1, description="Report rank 0's batch loss every this many steps."
    )


# Registered under the entry point group ``distbench.benchmarks`` (pyproject.toml), as a plugin's
# task is: this module is torch-free, so the server lists and checks the task without torch.
SPEC = BenchmarkSpec(
    name="digits",
    description="A small MLP on scikit-learn's handwritten digits (real data, no download), "
    "data-parallel, trained to a target validation accuracy.",
    options=DigitsOptions,
    entry="distbench.benchmarks.digits:run",
)
