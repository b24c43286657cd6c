"""GET /api/benchmarks: the tasks a run can name, with their options and defaults, and the
plugins that failed to load, by name, with the reason."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from distbench.api.encode import JSONBody
from distbench.api.routing import route
from distbench.benchmarks import registry as task_registry

router = APIRouter(tags=["benchmarks"])


class BenchmarkPublic(BaseModel):
    name: str
    status: Literal["ok", "broken"] = Field(
        description="broken: the plugin failed to load; ``error`` says why. It cannot be run."
    )
    source: str = Field(description="The package that provides the task, with its version.")
    builtin: bool = Field(description="Shipped with distbench (else a plugin).")
    description: str
    defaults: dict[str, Any] = Field(description="Every option's default value.")
    options: dict[str, Any] = Field(description="JSON Schema of the task's options.")
    error: str | None = Field(description="Why a broken plugin failed to load; else null.")


def benchmark_list() -> list[dict[str, Any]]:
    registry = task_registry.current()
    loaded = [
        {
            "name": name,
            "status": "ok",
            "source": task.source,
            "builtin": task.builtin,
            "description": task.spec.description,
            "defaults": task.spec.options().model_dump(mode="json"),
            "options": task.spec.options.model_json_schema(),
            "error": None,
        }
        for name, task in registry.tasks.items()
    ]
    broken = [
        {
            "name": plugin.name,
            "status": "broken",
            "source": plugin.source,
            "builtin": False,
            "description": "",
            "defaults": {},
            "options": {},
            "error": plugin.error,
        }
        for plugin in registry.broken
    ]
    return sorted(loaded + broken, key=lambda task: (task["name"], task["status"]))


@route(router, "GET", "/benchmarks", response_model=list[BenchmarkPublic])
async def list_benchmarks() -> Response:
    """Every benchmark task, with the options ``POST /api/runs/`` takes in ``options``; plugins
    that failed to load are listed too, with ``status: broken`` and the ``error``."""
    return JSONBody(benchmark_list())
