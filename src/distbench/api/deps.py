"""What routes receive: database connections, the orchestrator, the caller's identity.

The dependencies that only look things up are ``async``: FastAPI runs plain functions in its
thread pool, and that hop cost more than the rest of a metric post together.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from distbench.backends.base import ClusterBackend
from distbench.errors import Forbidden, Unauthenticated
from distbench.orchestrator import Orchestrator
from distbench.orchestrator.tokens import run_id_of_token
from distbench.settings import Settings


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is writing. ``run_id`` is set when a worker presented its run-scoped token, which
    allows posting metrics of that run only."""

    run_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.run_id is None


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> sa.Engine:
    engine: sa.Engine = request.app.state.engine
    return engine


def read_connection(request: Request) -> Iterator[sa.Connection]:
    engine: sa.Engine = request.app.state.engine
    with engine.connect() as conn:
        yield conn


async def get_orchestrator(request: Request) -> Orchestrator:
    orchestrator: Orchestrator = request.app.state.orchestrator
    return orchestrator


async def get_backend(request: Request) -> ClusterBackend:
    orchestrator: Orchestrator = request.app.state.orchestrator
    return orchestrator.backend


async def require_writer(request: Request) -> Caller:
    """With a server token, writes need ``Authorization: Bearer <token>``: 401 when missing,
    403 when wrong. Compared in constant time; the presented value is never logged."""
    settings: Settings = request.app.state.settings
    if settings.token is None:
        return Caller()
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthenticated(
            "this server needs a token for writes: send the header "
            "'Authorization: Bearer <token>' (the token the server was started with)"
        )
    expected = settings.token.get_secret_value()
    presented = presented.strip()
    if hmac.compare_digest(presented.encode(), expected.encode()):
        return Caller()
    run_id = run_id_of_token(expected, presented)
    if run_id is not None:
        return Caller(run_id=run_id)
    raise Forbidden("the bearer token is not valid for this server")


SettingsDep = Annotated[Settings, Depends(get_settings)]
ConnDep = Annotated[sa.Connection, Depends(read_connection)]
EngineDep = Annotated[sa.Engine, Depends(get_engine)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
BackendDep = Annotated[ClusterBackend, Depends(get_backend)]
WriterDep = Annotated[Caller, Depends(require_writer)]
