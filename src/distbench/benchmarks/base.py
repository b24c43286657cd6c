"""What a benchmark task is: a name, an options model, and a function run in every worker.

Specs are torch-free, so the server lists and validates tasks without importing torch; the
worker imports the task's module only when it runs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from distbench.worker.session import Session


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


@dataclass(kw_only=True)
class TaskContext(Session):
    """What a task gets: a worker's ``Session`` (who it is, where to report, its clocks; the
    API of users' own scripts too) and the task's options."""

    options: Any
