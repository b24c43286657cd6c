"""GET /api/benchmarks: the tasks a run can name, with their options and defaults."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from distbench import benchmarks
from distbench.api.encode import JSONBody
from distbench.api.routing import route

router = APIRouter(tags=["benchmarks"])


class BenchmarkPublic(BaseModel):
    name: str
    description: str
    defaults: dict[str, Any] = Field(description="Every option's default value.")
    options: dict[str, Any] = Field(description="JSON Schema of the task's options.")


@route(router, "GET", "/benchmarks", response_model=list[BenchmarkPublic])
async def list_benchmarks() -> Response:
    """Every benchmark task, with the options ``POST /api/runs/`` takes in ``options``."""
    return JSONBody(
        [
            {
                "name": spec.name,
                "description": spec.description,
                "defaults": spec.options().model_dump(mode="json"),
                "options": spec.options.model_json_schema(),
            }
            for spec in sorted(benchmarks.available().values(), key=lambda spec: spec.name)
        ]
    )
