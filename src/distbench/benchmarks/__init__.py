"""The benchmark tasks a run can name, and checking a run's choice before it starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from distbench.benchmarks.allreduce_options import AllreduceOptions
from distbench.benchmarks.base import BenchmarkSpec, TaskContext, TaskOptions
from distbench.benchmarks.digits_options import DigitsOptions
from distbench.benchmarks.logreg_options import LogregOptions
from distbench.benchmarks.resnet20_options import Resnet20Options
from distbench.errors import InvalidInput

__all__ = ["BenchmarkSpec", "TaskContext", "TaskOptions", "available", "get", "resolve_options"]

DEFAULT_BENCHMARK = "digits"

_BUILTIN = (
    BenchmarkSpec(
        name="digits",
        description="A small MLP on scikit-learn's handwritten digits (real data, no download), "
        "data-parallel, trained to a target validation accuracy.",
        options=DigitsOptions,
        entry="distbench.benchmarks.digits:run",
    ),
    BenchmarkSpec(
        name="allreduce",
        description="All-reduce time and bus bandwidth for message sizes from 1 KiB to 64 MiB "
        "(MLBench's task 0).",
        options=AllreduceOptions,
        entry="distbench.benchmarks.allreduce:run",
    ),
    BenchmarkSpec(
        name="logreg",
        description="L2-regularised logistic regression on a LIBSVM file (epsilon) or seeded "
        "synthetic data of its shape, data-parallel, trained to a target validation accuracy "
        "(MLBench's task 2a).",
        options=LogregOptions,
        entry="distbench.benchmarks.logreg:run",
    ),
    BenchmarkSpec(
        name="resnet20-cifar10",
        description="ResNet-20 (0.27 M parameters) on CIFAR-10, SGD with momentum, 128 images "
        "per worker, target 80 % top-1 (MLBench's task 1a); dataset=synthetic for throughput.",
        options=Resnet20Options,
        entry="distbench.benchmarks.resnet20:run",
    ),
)


def available() -> dict[str, BenchmarkSpec]:
    return {spec.name: spec for spec in _BUILTIN}


def get(name: str) -> BenchmarkSpec:
    specs = available()
    if name not in specs:
        raise InvalidInput(
            f"unknown benchmark {name!r}: choose one of {', '.join(sorted(specs))}",
            details={"errors": [{"field": "benchmark", "message": "unknown benchmark"}]},
        )
    return specs[name]


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
