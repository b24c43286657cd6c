"""Operator endpoints: GET /api/health and Prometheus text at GET /metrics."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from distbench import __version__
from distbench.api.deps import EngineDep, OrchestratorDep
from distbench.api.encode import JSONBody
from distbench.api.routing import errors, route
from distbench.api.schemas import Health
from distbench.errors import DatabaseUnavailable
from distbench.store.faults import probe, unavailable_reason

router = APIRouter(tags=["operations"])
prometheus_router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


@route(
    router,
    "GET",
    "/health",
    response_model=Health,
    responses=errors(503),
)
def health(engine: EngineDep, orchestrator: OrchestratorDep) -> Response:
    """Liveness and readiness: 200 when the database can be read and written, 503 (with what
    is wrong: ``unreachable``, ``read-only``, ``failing``, ``busy``) when it cannot."""
    try:
        probe(engine)
        database = "ok"
    except sa.exc.SQLAlchemyError as exc:
        database = unavailable_reason(exc) or "failing"
        log.warning("health check: database %s: %s", database, exc)
    body = {
        "status": "ok" if database == "ok" else "degraded",
        "database": database,
        "backend": orchestrator.backend_name,
        "version": __version__,
    }
    if database != "ok":
        # Still the one error shape; the health facts ride along in ``details``.
        raise DatabaseUnavailable(f"the database is {database}; see the server log", details=body)
    return JSONBody(body)


@route(
    prometheus_router,
    "GET",
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def prometheus(request: Request) -> Response:
    """Request counts and latencies, and metric points ingested (run and pod)."""
    observability = request.app.state.observability
    return Response(observability.render(), media_type=observability.content_type)
