"""The REST API. This module is its table of contents."""

from __future__ import annotations

from fastapi import APIRouter

from distbench.api import benchmarks, health, metrics, pods, runs
from distbench.api.deps import ReaderCheck
from distbench.api.routing import errors as error_responses


# With --protect-reads, every read needs the server token (ReaderCheck), except the health
# probe: orchestrators and load balancers call it without credentials. The document says so:
# each read may answer 401 (no token) and 403 (a token that may not read this).
def include_protected(parent: APIRouter, child: APIRouter) -> None:
    parent.include_router(child, dependencies=[ReaderCheck], responses=error_responses(401, 403))


api_router = APIRouter(prefix="/api")
for part in (pods, metrics, runs, benchmarks):
    include_protected(api_router, part.router)
api_router.include_router(health.router)

# Outside /api: Prometheus scrapes /metrics by convention.
operations_router = APIRouter()
include_protected(operations_router, health.prometheus_router)

__all__ = ["api_router", "operations_router"]
