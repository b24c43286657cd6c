"""The benchmark tasks a run can name (built-in and plugins, see ``registry``), and checking a
run's choice before it starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from distbench.benchmarks.base import BenchmarkSpec, TaskContext, TaskOptions
from distbench.benchmarks.registry import COMMAND_BENCHMARK, Broken, Registered, current, reload
from distbench.errors import InvalidInput

__all__ = [
    "COMMAND_BENCHMARK",
    "BenchmarkSpec",
    "Broken",
    "Registered",
    "TaskContext",
    "TaskOptions",
    "available",
    "get",
    "reload",
    "resolve_options",
]

DEFAULT_BENCHMARK = "digits"


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


def resolve_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The task's options with defaults filled in, or ``InvalidInput`` naming each bad one."""
    spec = get(name)
    try:
        return spec.options.model_validate(dict(options)).model_dump(mode="json")
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
            f"invalid options for benchmark {name!r}: {summary}", details={"errors": problems}
        ) from exc
