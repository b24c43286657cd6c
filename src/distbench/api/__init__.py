"""The REST API. This module is its table of contents."""

from __future__ import annotations

from fastapi import APIRouter

from distbench.api import benchmarks, health, metrics, pods, runs

api_router = APIRouter(prefix="/api")
api_router.include_router(pods.router)
api_router.include_router(metrics.router)
api_router.include_router(runs.router)
api_router.include_router(benchmarks.router)
api_router.include_router(health.router)

# Outside /api: Prometheus scrapes /metrics by convention.
operations_router = health.prometheus_router

__all__ = ["api_router", "operations_router"]
