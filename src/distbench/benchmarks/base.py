"""What a benchmark task is: a name, an options model, and a function run in every worker.

Specs are torch-free, so the server lists and validates tasks without importing torch; the
worker imports the task's module only when it runs it.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from distbench.worker.env import WorkerEnv
from distbench.worker.reporter import Reporter
from distbench.worker.timing import Timers

if TYPE_CHECKING:
    import torch


class TaskOptions(BaseModel):
    """Base of every task's options: unknown options are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class BenchmarkSpec:
    name: str
    description: str
    options: type[TaskOptions]
    entry: str  # "package.module:function", called with a TaskContext

    def load(self) -> Callable[[TaskContext], Mapping[str, Any]]:
        module_name, _, function = self.entry.partition(":")
        runner: Callable[[TaskContext], Mapping[str, Any]] = getattr(
            importlib.import_module(module_name), function
        )
        return runner


@dataclass
class TaskContext:
    """What a task gets: who it is, where to report, its clocks and its options."""

    env: WorkerEnv
    reporter: Reporter
    options: Any
    timers: Timers = field(default_factory=Timers)
    # MLPerf's rule: the clock starts before the first touch of data and never pauses.
    clock_started: float = field(default_factory=time.perf_counter)

    @property
    def device(self) -> torch.device:
        """Where the task's tensors live: the rank's GPU on GPU runs, else the CPU."""
        import torch  # here, not at the top: the server imports this module without torch

        return torch.device("cuda", 0) if self.env.device == "cuda" else torch.device("cpu")

    @property
    def is_leader(self) -> bool:
        return self.env.rank == 0

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.clock_started

    def report(self, name: str, value: float, *, metadata: str = "") -> None:
        """Report a run-level metric (from rank 0 only, so each series has one writer)."""
        if self.is_leader:
            self.reporter.report(name, value, metadata=metadata)
