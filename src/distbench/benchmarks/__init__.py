"""The benchmark tasks a run can name (built-in and plugins, see ``registry``), and checking a
run's choice before it starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distbench.benchmarks.base import BenchmarkSpec, TaskContext, TaskOptions
from distbench.benchmarks.paths import DataDir, DataFile, confine
from distbench.benchmarks.registry import COMMAND_BENCHMARK, Broken, Registered, current, reload
from distbench.errors import InvalidInput
from distbench.worker.env import DEFAULT_BENCHMARK

__all__ = [
    "COMMAND_BENCHMARK",
    "DEFAULT_BENCHMARK",
    "BenchmarkSpec",
    "Broken",
    "DataDir",
    "DataFile",
    "Registered",
    "TaskContext",
    "TaskOptions",
    "available",
    "get",
    "reload",
    "resolve_options",
    "validated_options",
]


def available() -> dict[str, BenchmarkSpec]:
    """Every task that loaded, built-in or plugin, by name."""
    return {name: task.spec for name, task in current().tasks.items()}


def get(name: str) -> BenchmarkSpec:
    specs = available()
    if name in specs:
        return specs[name]
    broken = next((b for b in current().broken if b.name == name), None)
    if broken is not None:
        raise InvalidInput(
            f"benchmark {name!r} ({broken.source}) is installed but broken: {broken.error}",
            details={"errors": [{"field": "benchmark", "message": "broken plugin"}]},
        )
    raise InvalidInput(
        f"unknown benchmark {name!r}: choose one of {', '.join(sorted(specs))}",
        details={"errors": [{"field": "benchmark", "message": "unknown benchmark"}]},
    )


def resolve_options(
    name: str, options: Mapping[str, Any], *, data_root: Path | None = None
) -> dict[str, Any]:
    """The task's options with defaults filled in and path options resolved under
    ``data_root``, or ``InvalidInput`` naming each bad one. ``data_root`` None leaves paths
    unchecked: only for options that were checked against the root already."""
    return validated_options(get(name), options, data_root=data_root).model_dump(mode="json")


def validated_options(
    spec: BenchmarkSpec, options: Mapping[str, Any], *, data_root: Path | None
) -> TaskOptions:
    """What ``resolve_options`` checks, as the task's options object (what a worker runs)."""
    try:
        validated = spec.options.model_validate(dict(options))
    except ValidationError as exc:
        problems = [
            {
                "field": "options." + ".".join(str(p) for p in error["loc"]),
                "message": error["msg"],
            }
            for error in exc.errors(include_url=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidInput(
            f"invalid options for benchmark {spec.name!r}: {summary}",
            details={"errors": problems},
        ) from exc
    if data_root is None:
        return validated
    try:
        return confine(validated, data_root=data_root)
    except InvalidInput as exc:
        raise InvalidInput(
            f"invalid options for benchmark {spec.name!r}: {exc.message}", details=exc.details
        ) from None
