"""The REST API. This module is its table of contents."""

from __future__ import annotations

from fastapi import APIRouter

from distbench.api import benchmarks, health, metrics, pods, runs
from distbench.api.deps import ReaderCheck

# With --protect-reads, every read needs the server token (ReaderCheck), except the health
# probe: orchestrators and load balancers call it without credentials.
api_router = APIRouter(prefix="/api")
api_router.include_router(pods.router, dependencies=[ReaderCheck])
api_router.include_router(metrics.router, dependencies=[ReaderCheck])
api_router.include_router(runs.router, dependencies=[ReaderCheck])
api_router.include_router(benchmarks.router, dependencies=[ReaderCheck])
api_router.include_router(health.router)

# Outside /api: Prometheus scrapes /metrics by convention.
operations_router = APIRouter()
operations_router.include_router(health.prometheus_router, dependencies=[ReaderCheck])

__all__ = ["api_router", "operations_router"]
