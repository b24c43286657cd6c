"""Task option errors in the terms of ``-o key=value``.

The server checks options against the task's schema and names each bad field in pydantic's
words ("Input should be a valid list", "Extra inputs are not permitted"). A CLI user needs the
spelling that works: a list option written as ``-o 'sizes_bytes=[1048576]'``, or the names the
task does have. The task's schema comes from ``GET /api/benchmarks``, as the server has it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from distbench.client import Benchmark
from distbench.errors import InvalidInput
from distbench.worker.env import DEFAULT_BENCHMARK

OPTION_PREFIX = "options."


@dataclass(frozen=True)
class GivenOptions:
    """What a run was started with: its task (None: the server's default) and ``-o`` options."""

    benchmark: str | None
    options: Mapping[str, Any]

    @property
    def task_name(self) -> str:
        return self.benchmark or DEFAULT_BENCHMARK


def option_problems(exc: InvalidInput) -> list[tuple[str, str]]:
    """``(option, message)`` for each bad option the server named; empty when none was."""
    errors = exc.details.get("errors")
    if not isinstance(errors, list):
        return []
    return [
        (str(error["field"]).removeprefix(OPTION_PREFIX).split(".")[0], str(error["message"]))
        for error in errors
        if isinstance(error, dict) and str(error.get("field", "")).startswith(OPTION_PREFIX)
    ]


def explain(problems: list[tuple[str, str]], task: Benchmark, given: GivenOptions) -> str:
    """One line: each bad option with the fix in ``-o`` syntax, and the task's option names
    when one given is not among them."""
    properties: dict[str, Any] = task.options.get("properties", {})
    parts = [
        _explain_one(name, message, properties.get(name), given.options.get(name))
        for name, message in problems
    ]
    line = f"invalid options for benchmark {task.name!r}: " + "; ".join(parts)
    if any(name not in properties for name, _ in problems):
        line += f" (its options: {', '.join(properties) or 'none'})"
    return line


def _explain_one(name: str, message: str, schema: Any, value: Any) -> str:
    if not isinstance(schema, dict):
        return f"-o {name}: no such option"
    if schema.get("type") == "array" and not isinstance(value, list):
        example = json.dumps([value] if value is not None else [], separators=(",", ":"))
        return f"-o {name} takes a list: write it as -o '{name}={example}'"
    return f"-o {name}: {message}"
