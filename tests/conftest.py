"""Shared fixtures: a real database (a SQLite file, and PostgreSQL: required in CI, skipped with
a visible reason elsewhere when unreachable) and a real server on a free port, with the FAKE
backend unless a test asks for another."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from distbench.app import create_app
from distbench.backends.base import ClusterBackend
from distbench.ports import free_port as free_port
from distbench.settings import Settings
from distbench.store import schema
from distbench.store.engine import create_engine
from tests.fake_backend import FakeBackend

POSTGRES_ADMIN_URL = os.environ.get(
    "DISTBENCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# CI sets this: there, a PostgreSQL that cannot be reached fails the tests, never skips them.
POSTGRES_REQUIRED = os.environ.get("DISTBENCH_REQUIRE_POSTGRES") == "1"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _postgres_problem() -> str | None:
    try:
        with psycopg.connect(_libpq(POSTGRES_ADMIN_URL), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable ({exc})"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    problem = _postgres_problem()
    if problem is not None:
        if POSTGRES_REQUIRED:
            pytest.fail(f"{problem}, and DISTBENCH_REQUIRE_POSTGRES=1")
        pytest.skip(f"{problem}; set DISTBENCH_TEST_POSTGRES_URL to test on PostgreSQL")
    return POSTGRES_ADMIN_URL


def _fresh_postgres(admin_url: str) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    name = f"distbench_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind; the test runs once per kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'distbench.db'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    yield from _fresh_postgres(admin_url)


@pytest.fixture
def migrated_database_url(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()
    return database_url


@dataclass
class RunningServer:
    url: str
    settings: Settings
    backend: ClusterBackend
    app: object

    @property
    def fake(self) -> FakeBackend:
        assert isinstance(self.backend, FakeBackend)
        return self.backend


class ServerThread:
    """A real uvicorn server in a thread: tests talk HTTP to it like any client would."""

    def __init__(self, settings: Settings, backend: ClusterBackend | None) -> None:
        self.app = create_app(settings, backend=backend)
        config = uvicorn.Config(
            self.app, host=settings.host, port=settings.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread died while starting (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 30 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


StartServer = Callable[..., RunningServer]


@pytest.fixture
def start_server(migrated_database_url: str, tmp_path: Path) -> Iterator[StartServer]:
    """Start a server on the test's database: ``start_server(backend=..., token=...)``."""
    running: list[ServerThread] = []

    def start(backend: ClusterBackend | None = None, **overrides: object) -> RunningServer:
        port = free_port()
        values: dict[str, object] = {
            "host": "127.0.0.1",
            "port": port,
            "database_url": migrated_database_url,
            "data_dir": tmp_path / "data",
            "collect_interval_s": 0.2,
        }
        values.update(overrides)
        settings = Settings(**values)  # type: ignore[arg-type]
        chosen = backend if backend is not None else FakeBackend(release=settings.release)
        thread = ServerThread(settings, chosen)
        thread.__enter__()
        running.append(thread)
        return RunningServer(
            url=f"http://127.0.0.1:{port}", settings=settings, backend=chosen, app=thread.app
        )

    yield start
    for thread in reversed(running):
        thread.__exit__(None, None, None)


@pytest.fixture
def server(start_server: StartServer) -> RunningServer:
    """A server with the fake backend and no token, on each database kind."""
    return start_server()
