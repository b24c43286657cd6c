"""``create_app(settings)``: nothing is built at import; the lifespan builds the engine,
orchestrator and collector and tears them down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from distbench import __version__, data_lock
from distbench.api import api_router, operations_router
from distbench.api import errors as api_errors
from distbench.api.encode import JSON_TYPE, JSONBody
from distbench.api.observability import Observability, ObservabilityMiddleware
from distbench.api.run_tokens import RunTokenGrace
from distbench.api.schemas import MetricCreate, RunCreate
from distbench.backends import ClusterBackend, create_backend
from distbench.benchmarks import registry as task_registry
from distbench.collector import Collector
from distbench.dashboard import install as install_dashboard
from distbench.orchestrator import Orchestrator
from distbench.settings import Settings
from distbench.store import schema
from distbench.store.engine import create_engine, is_sqlite
from distbench.store.writer import PointWriter

log = logging.getLogger(__name__)


def prepare_database(settings: Settings) -> None:
    """Refuse to serve an out-of-date schema; a fresh SQLite file is migrated on the spot.

    Called once per start, by whoever starts the server (``distbench serve``, ``demo``) before
    ``create_app``'s lifespan runs: a refusal there is a one-line message, where one raised in
    the lifespan would be a traceback from uvicorn."""
    engine = create_engine(settings.database_url)
    try:
        fresh_sqlite = is_sqlite(settings.database_url) and schema.current_revision(engine) is None
        schema.ensure_current(engine, upgrade_if_behind=fresh_sqlite)
    finally:
        engine.dispose()


@asynccontextmanager
async def serving(
    app: FastAPI, settings: Settings, backend: ClusterBackend | None
) -> AsyncIterator[None]:
    """The engine, orchestrator, collector and writer, for as long as the app serves. The
    database was prepared before (``prepare_database``), once per start."""
    # Found again at each start, so a plugin installed since the last start shows; a
    # broken one is logged here and listed by GET /api/benchmarks.
    task_registry.reload()
    engine = create_engine(settings.database_url)
    chosen = backend if backend is not None else create_backend(settings)
    token = settings.token.get_secret_value() if settings.token is not None else None
    pod_points = app.state.observability.points_ingested.labels(kind="pod")
    collector = Collector(
        engine=engine,
        backend=chosen,
        interval_s=settings.collect_interval_s,
        on_stored=pod_points.inc,
    )
    orchestrator = Orchestrator(
        engine=engine,
        backend=chosen,
        server_url=settings.advertised_url,
        server_token=token,
        start_timeout_s=settings.start_timeout_s,
        before_cleanup=collector.sample_pods,
    )
    writer = PointWriter(engine)
    writer.start()
    app.state.engine = engine
    app.state.run_token_grace = RunTokenGrace(engine=engine, grace_s=settings.run_token_grace_s)
    app.state.writer = writer
    app.state.orchestrator = orchestrator
    app.state.collector = collector
    orchestrator.start()
    collector.start()
    try:
        yield
    finally:
        collector.close()
        writer.close()
        orchestrator.close()
        engine.dispose()


def create_app(settings: Settings, *, backend: ClusterBackend | None = None) -> FastAPI:
    """The server, on a database ``prepare_database`` has prepared. ``backend`` replaces the
    one ``settings`` names (tests pass a fake)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # First of all: a second server on this data directory would take the first one's
        # workers over (their relay socket and run state live there). ``distbench serve`` holds
        # it already; taking it again in the same process is allowed.
        data_lock.acquire(settings.data_dir, port=settings.port)
        try:
            async with serving(app, settings, backend):
                yield
        finally:
            data_lock.release(settings.data_dir)

    app = FastAPI(
        title="distbench",
        version=__version__,
        summary="MLBench's dashboard API: runs of distributed training, their metrics, pods.",
        lifespan=lifespan,
        default_response_class=JSONBody,
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.observability = Observability()
    app.include_router(api_router)
    app.include_router(operations_router)
    install_dashboard(app)  # HTML pages at / and their /static files; not in the API document
    api_errors.install(app)
    app.add_middleware(ObservabilityMiddleware, observability=app.state.observability)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, made true: bad input is a 400 in ``ErrorBody``, never a 422."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    error_content = {JSON_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {"description": "Bad input"}
            for status, response in responses.items():
                # Every error is the JSON ErrorBody, also on a route whose own answer is text
                # (FastAPI would give the error that route's media type).
                if int(status) >= 400:
                    response["content"] = error_content
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    # Routes that parse their body themselves (JSON or form) refer to these by name in
    # ``openapi_extra``; FastAPI does not see them, so without this the references dangle.
    _, body_schemas = models_json_schema(
        [(MetricCreate, "validation"), (RunCreate, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    schemas.update(body_schemas.get("$defs", {}))
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = document
    return document
