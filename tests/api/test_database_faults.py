"""A database the server can no longer write or reach: the endpoints answer 503 in the one error
shape with ``Retry-After``, ``/api/health`` says the same, and both recover when it comes back.

The faults are real: a SQLite file made immutable under a running server (``chattr +i``, which
stops root too, where file modes do not), and a PostgreSQL database that stops taking connections
(``ALLOW_CONNECTIONS false`` and its sessions ended), never the machine's PostgreSQL server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.api.helpers import active_run, assert_error, client, wait_for
from tests.conftest import StartServer, _libpq

UNAVAILABLE = "database_unavailable"


@contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """The files cannot be written, even by root, until the block ends."""
    done: list[Path] = []
    try:
        for path in paths:
            result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
            if result.returncode != 0:
                pytest.skip(f"chattr +i {path} failed ({result.stderr.strip()}): needs root")
            done.append(path)
        yield
    finally:
        for path in done:
            subprocess.run(["chattr", "-i", str(path)], check=True)


@contextmanager
def refusing_connections(admin_url: str, database: str) -> Iterator[None]:
    """``database`` takes no connections and its sessions are ended, until the block ends."""
    with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
    try:
        yield
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


def assert_unavailable(response: httpx.Response, reasons: set[str]) -> None:
    error = assert_error(response, 503, UNAVAILABLE, ("retry",))
    assert response.headers["retry-after"] == "5"
    assert error["details"]["database"] in reasons, error


def assert_health(http: httpx.Client, reasons: set[str]) -> None:
    response = http.get("/api/health")
    error = assert_error(response, 503, UNAVAILABLE)
    assert response.headers["retry-after"] == "5"
    assert error["details"]["status"] == "degraded"
    assert error["details"]["database"] in reasons, error


def recovered(http: httpx.Client, run_id: int) -> None:
    """Health is ok again and a point posts: nothing needed a restart."""
    wait_for(lambda: http.get("/api/health").status_code == 200, what="health to recover")
    response = http.post("/api/metrics", json={"run_id": run_id, "name": "after", "value": 1})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unwritable_sqlite_file_is_503_with_retry_after_and_health_says_so(
    start_server: StartServer,
) -> None:
    server = start_server()
    database = Path(make_url(server.settings.database_url).database or "")
    with client(server) as http:
        run = active_run(http, num_workers=1)
        point = {"run_id": run["id"], "name": "loss", "value": 0.5}
        assert http.post("/api/metrics", json=point).status_code == 201
        assert http.get("/api/health").status_code == 200
        # WAL mode writes the -wal file first: both must refuse. The -shm is left alone (it is
        # mapped into memory, and a write fault there is a SIGBUS, not an error).
        with immutable(database, database.with_name(database.name + "-wal")):
            # "read-only" for a fresh connection, "failing" (disk I/O error) for one that
            # learns of it at commit: both are the file's fault, both a 503.
            faults = {"read-only", "failing"}
            assert_unavailable(http.post("/api/metrics", json=point), faults)
            assert_unavailable(http.post("/api/metrics/batch", json=[point, point]), faults)
            assert_unavailable(http.delete(f"/api/runs/{run['id']}/"), faults)
            assert_health(http, faults)
            # Reads still work: the data is there, only writes are refused.
            assert http.get(f"/api/runs/{run['id']}/").json()["state"] == "STARTED"
        recovered(http, run["id"])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgres_database_that_refuses_connections_is_503_and_health_says_so(
    start_server: StartServer, postgres_admin_url: str
) -> None:
    server = start_server()
    name = make_url(server.settings.database_url).database
    assert name is not None
    with client(server) as http:
        run = active_run(http, num_workers=1)
        point = {"run_id": run["id"], "name": "loss", "value": 0.5}
        with refusing_connections(postgres_admin_url, name):
            down = {"unreachable"}
            assert_unavailable(http.get("/api/runs/"), down)
            assert_unavailable(http.get(f"/api/runs/{run['id']}/"), down)
            assert_unavailable(
                http.get(f"/api/metrics/{run['id']}/", params={"metric_type": "run"}), down
            )
            assert_unavailable(http.post("/api/metrics", json=point), down)
            assert_unavailable(http.post("/api/metrics/batch", json=[point]), down)
            assert_health(http, down)
        recovered(http, run["id"])
