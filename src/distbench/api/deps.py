"""What routes receive: database connections, the orchestrator, the caller's identity.

The dependencies that only look things up are ``async``: FastAPI runs plain functions in its
thread pool, and that hop cost more than the rest of a metric post together.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from distbench.api.run_tokens import RunTokenGrace
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


def _presented_token(request: Request, *, needed_for: str) -> str:
    """The token of the request: the bearer token, or the password of HTTP Basic auth (any
    user name), which is all MLBench's client can send (``ApiClient(url="user:TOKEN@host")``).
    401 when there is none or the Basic credentials cannot be read."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if scheme == "basic" and credentials:
        presented = _basic_password(credentials, needed_for=needed_for)
    elif scheme == "bearer":
        presented = credentials
    else:
        presented = ""
    if not presented:
        raise Unauthenticated(
            f"this server needs a token for {needed_for}: send the header "
            "'Authorization: Bearer <token>' (the token the server was started with), or use "
            "it as the password of HTTP Basic auth"
        )
    return presented


def _basic_password(credentials: str, *, needed_for: str) -> str:
    """The password of Basic credentials (base64 of ``user:password``, UTF-8)."""
    try:
        user_pass = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        user_pass = ""
    if ":" not in user_pass:
        raise Unauthenticated(
            f"this server needs a token for {needed_for}: the Basic credentials are not "
            "base64 of UTF-8 'user:password'; send the token as the password (any user name), "
            "or the header 'Authorization: Bearer <token>'"
        )
    return user_pass.partition(":")[2]


def _identify(server_token: str, presented: str) -> Caller:
    """The server token makes an admin, a run token a worker of its run; anything else is 403.
    Compared in constant time; the presented value is never logged."""
    if hmac.compare_digest(presented.encode(), server_token.encode()):
        return Caller()
    run_id = run_id_of_token(server_token, presented)
    if run_id is not None:
        return Caller(run_id=run_id)
    raise Forbidden("the token is not valid for this server")


async def require_writer(request: Request) -> Caller:
    """With a server token, writes need it (``Authorization: Bearer <token>``, or as the
    password of Basic auth): 401 when missing, 403 when wrong, and 403 for a run token once
    its run ended more than the grace time ago."""
    settings: Settings = request.app.state.settings
    if settings.token is None:
        return Caller()
    caller = _identify(
        settings.token.get_secret_value(), _presented_token(request, needed_for="writes")
    )
    if caller.run_id is not None:
        grace: RunTokenGrace = request.app.state.run_token_grace
        if grace.needs_lookup(caller.run_id):
            await run_in_threadpool(grace.look_up, caller.run_id)
        grace.check(caller.run_id)
    return caller


async def require_reader(request: Request) -> None:
    """With ``protect_reads``, reads (GET, HEAD) need the server token as writes do; a run
    token, made to post one run's metrics, reads only that run's series back. Other methods
    are left to ``require_writer``."""
    settings: Settings = request.app.state.settings
    if not settings.protect_reads or settings.token is None:
        return
    if request.method not in ("GET", "HEAD"):
        return
    presented = _presented_token(request, needed_for="reads (it protects reads)")
    caller = _identify(settings.token.get_secret_value(), presented)
    if caller.is_admin or _reads_own_series(request, caller):
        return
    raise Forbidden(
        "a run token only posts its run's metrics (and reads that run's series back): reads "
        "on this server need the server token"
    )


def _reads_own_series(request: Request, caller: Caller) -> bool:
    """Whether a worker reads its own run's series as JSON: after a post whose answer was lost,
    its reporter looks there for the points before resending them, so none is stored twice."""
    return (
        request.path_params.get("pod_name_or_run_id") == str(caller.run_id)
        and request.query_params.get("metric_type") == "run"
        and request.query_params.get("format") in (None, "json")
    )


SettingsDep = Annotated[Settings, Depends(get_settings)]
ConnDep = Annotated[sa.Connection, Depends(read_connection)]
EngineDep = Annotated[sa.Engine, Depends(get_engine)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
WriterDep = Annotated[Caller, Depends(require_writer)]
# Routers of reads are included with ``dependencies=[ReaderCheck]`` (api/__init__.py).
ReaderCheck = Depends(require_reader)
