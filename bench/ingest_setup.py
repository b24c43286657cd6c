"""The database and the server that ``bench/ingest.py`` measures: a fresh database seeded with
the store functions, and the real ``distbench serve`` pinned to one core."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import make_url

from distbench.ports import free_port as free_port
from distbench.store import pods as pod_store
from distbench.store import runs as run_store
from distbench.store import schema
from distbench.store.engine import create_engine, is_sqlite
from distbench.store.records import NewRun
from distbench.store.tables import ACTIVE_STATES, metrics

HOST = "127.0.0.1"


@dataclass(slots=True)
class Database:
    url: str
    label: str
    version: str = ""
    postgres_name: str | None = None  # the database created on the PostgreSQL server


@contextmanager
def fresh_database(given_url: str | None, scratch: Path) -> Iterator[Database]:
    """An empty database for this run, removed afterwards. A PostgreSQL URL names the server
    and the database to create there; the database must not exist (it is dropped at the end)."""
    if given_url is None:
        given_url = f"sqlite:///{scratch / 'bench.db'}"
    if is_sqlite(given_url):
        path = make_url(given_url).database
        if not path or path == ":memory:" or Path(path).exists():
            sys.exit(f"ingest: give a SQLite file that does not exist yet, not {given_url!r}")
        try:
            yield Database(given_url, "SQLite", sqlite3.sqlite_version)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)
        return
    url = make_url(given_url)
    name = url.database or f"distbench_bench_{os.getpid()}"
    admin = url.set(drivername="postgresql", database="postgres")
    admin_dsn = admin.render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except psycopg.Error as exc:
        sys.exit(f"ingest: cannot create database {name!r} at {admin.host}: {exc}".strip())
    try:
        fresh = url.set(database=name).render_as_string(hide_password=False)
        yield Database(fresh, "PostgreSQL", version, postgres_name=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            conn.execute(drop)


@dataclass(frozen=True, slots=True)
class Seeded:
    single_run_id: int
    single_pod: str
    series_run_id: int


def seed(url: str) -> Seeded:
    """Two finished runs with a pod each: one takes the single POSTs, the other the batches."""
    engine = create_engine(url)
    try:
        schema.upgrade(engine)
        made: list[tuple[int, str]] = []
        with engine.begin() as conn:
            for name in ("bench-single", "bench-series"):
                new = NewRun(
                    name=name,
                    num_workers=1,
                    num_cpus=1.0,
                    max_bandwidth=None,
                    benchmark="digits",
                    backend="gloo",
                )
                run = run_store.create_run(conn=conn, new=new)
                run_store.transition(
                    conn=conn, run_id=run.id, to_state="FINISHED", from_states=ACTIVE_STATES
                )
                pod = f"distbench-worker-{run.id}-0"
                labels = {
                    "app": "distbench",
                    "component": "worker",
                    "release": "distbench",
                    "run-id": str(run.id),
                }
                pod_store.record_pod(
                    conn=conn, name=pod, run_id=run.id, rank=0, labels=labels, ip=HOST
                )
                made.append((run.id, pod))
    finally:
        engine.dispose()
    return Seeded(made[0][0], made[0][1], made[1][0])


def count_points(url: str, name: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(metrics).where(metrics.c.name == name)
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


# -- the server -------------------------------------------------------------------------------


def distbench_command() -> str:
    beside = Path(sys.executable).parent / "distbench"
    found = str(beside) if beside.exists() else shutil.which("distbench")
    if found is None:
        sys.exit("ingest: no `distbench` command: run from the project's virtualenv")
    return found


@contextmanager
def running_server(url: str, port: int, cpu: int, scratch: Path) -> Iterator[int]:
    """``distbench serve`` pinned to ``cpu``; yields its pid once /api/health answers."""
    command = [
        "taskset", "-c", str(cpu), distbench_command(), "serve", "--port", str(port),
        "--database-url", url, "--log-level", "warning",
    ]  # fmt: skip
    # DISTBENCH_* from the caller's shell (a token, another database) would change what is measured.
    env = {key: value for key, value in os.environ.items() if not key.startswith("DISTBENCH_")}
    env["DISTBENCH_DATA_DIR"] = str(scratch / "data")
    log_path = scratch / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
                sys.exit(
                    "ingest: the server did not start (exit status "
                    f"{server.poll()}); its last output:\n  " + "\n  ".join(tail)
                )
            time.sleep(0.1)
        yield server.pid
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        conn.request("GET", "/api/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
