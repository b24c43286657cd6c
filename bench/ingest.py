"""Ingest benchmark: how fast the real ``distbench serve`` takes metric points and serves series.

The server runs pinned to one core (``taskset``) and this script, the load generator, to another,
so neither steals the other's CPU. It prints, against the targets of the issue:

- single-point ``POST /api/metrics`` requests/s from many concurrent keep-alive connections
  (``wrk`` with a Lua script when installed, else a Python asyncio client, which may itself be
  the bottleneck: the table says which was used);
- batch points/s through ``POST /api/metrics/batch`` (5,000-point bodies, a few clients);
- the time to serve one run's 200,000-point series raw and with ``max_points=1000``.

The database is seeded with the store functions before the server starts (two finished runs,
each with a pod), and the batch phase writes exactly the series the read phase then reads.

    .venv/bin/python bench/ingest.py                       # SQLite file in a temporary folder
    .venv/bin/python bench/ingest.py --database-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/distbench_bench   # created, then dropped
    .venv/bin/python bench/ingest.py --record              # also write bench/RESULTS.md

Performance is printed here, never asserted in tests (STYLE.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import loadgen
import results
import spy
from distbench import __version__
from distbench.store import pods as pod_store
from distbench.store import runs as run_store
from distbench.store import schema
from distbench.store.engine import create_engine, is_sqlite
from distbench.store.records import NewRun
from distbench.store.tables import ACTIVE_STATES, metrics
from distbench.timefmt import format_us

HOST = "127.0.0.1"
SINGLE_NAME = "bench/single"
SERIES_NAME = "bench/series"
SERIES_START_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z; one point per second after it

TARGET_SINGLE_PER_S = 2_500
TARGET_BATCH_POINTS_PER_S = 100_000
TARGET_RAW_MS = 300
TARGET_DOWNSAMPLED_MS = 50


# -- the database -----------------------------------------------------------------------------


@dataclass(slots=True)
class Database:
    url: str
    label: str
    version: str = ""


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
            conn.execute(f'CREATE DATABASE "{name}"')
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except psycopg.Error as exc:
        sys.exit(f"ingest: cannot create database {name!r} at {admin.host}: {exc}".strip())
    try:
        yield Database(
            url.set(database=name).render_as_string(hide_password=False), "PostgreSQL", version
        )
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


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


# -- CPU accounting ---------------------------------------------------------------------------


def _process_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def _core_ticks(cpu: int) -> tuple[int, int]:
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts[0] == f"cpu{cpu}":
            ticks = [int(v) for v in parts[1:9]]
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # busy, total
    return 0, 0


@dataclass(slots=True)
class CpuUse:
    """Busy share of the server process and of each core during one phase, in percent."""

    server_pct: float = 0.0
    core_pct: dict[int, float] = field(default_factory=dict)

    def text(self) -> str:
        cores = ", ".join(f"core {c} {p:.0f}%" for c, p in sorted(self.core_pct.items()))
        return f"server process {self.server_pct:.0f}% of a core; {cores} busy"


@contextmanager
def cpu_watch(server_pid: int, cores: tuple[int, ...]) -> Iterator[CpuUse]:
    use = CpuUse()
    clock = os.sysconf("SC_CLK_TCK")
    before_server = _process_ticks(server_pid)
    before_cores = {c: _core_ticks(c) for c in cores}
    started = time.monotonic()
    yield use
    elapsed_s = time.monotonic() - started
    use.server_pct = 100 * (_process_ticks(server_pid) - before_server) / clock / elapsed_s
    for c in cores:
        busy, total = _core_ticks(c)
        use.core_pct[c] = 100 * (busy - before_cores[c][0]) / max(1, total - before_cores[c][1])


def background_busy(cores: tuple[int, ...], seconds: float = 1.0) -> dict[int, float]:
    """How busy each core is before the benchmark starts: other work there skews every number."""
    before = {c: _core_ticks(c) for c in cores}
    time.sleep(seconds)
    after = {c: _core_ticks(c) for c in cores}
    return {
        c: 100 * (after[c][0] - before[c][0]) / max(1, after[c][1] - before[c][1]) for c in cores
    }


@contextmanager
def watched(args: argparse.Namespace, pid: int, phase: str) -> Iterator[CpuUse]:
    """CPU use of a phase, and with ``--profile`` the server's stacks sampled during it."""
    with cpu_watch(pid, (args.server_cpu, args.client_cpu)) as use:
        if args.profile is None:
            yield use
            return
        args.profile.mkdir(parents=True, exist_ok=True)
        with spy.sampled(pid, args.profile / f"{phase}.txt"):
            yield use


# -- the phases -------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    measure: str
    result: str
    target: str
    met: bool
    notes: list[str]


def single_posts(args: argparse.Namespace, seeded: Seeded, pid: int, url: str) -> Outcome:
    use_wrk = args.load_generator == "wrk" or (
        args.load_generator == "auto" and loadgen.wrk_path() is not None
    )
    if use_wrk and loadgen.wrk_path() is None:
        sys.exit(f"ingest: --load-generator wrk, but {loadgen.WRK_INSTALL_HINT}")
    notes = []
    if not use_wrk and args.load_generator == "auto":
        notes.append(f"wrk not found ({loadgen.WRK_INSTALL_HINT}); used the Python client")

    def body(counter: int) -> bytes:
        owner = (
            {"run_id": seeded.single_run_id}
            if counter % 2 == 0
            else {"pod_name": seeded.single_pod}
        )
        return orjson.dumps(
            {**owner, "name": SINGLE_NAME, "date": format_us(SERIES_START_US + counter),
             "value": counter + 0.25, "cumulative": False}
        )  # fmt: skip

    def load(duration_s: float) -> loadgen.LoadResult:
        if use_wrk:
            return loadgen.run_wrk(
                base_url=f"http://{HOST}:{args.port}",
                run_id=seeded.single_run_id,
                pod_name=seeded.single_pod,
                connections=args.connections,
                duration_s=duration_s,
            )
        return loadgen.post_for(
            host=HOST,
            port=args.port,
            make_body=body,
            connections=args.connections,
            duration_s=duration_s,
        )

    load(args.warmup_seconds)
    stored_before = count_points(url, SINGLE_NAME)
    with watched(args, pid, "single") as cpu:
        result = load(args.single_seconds)
    stored = count_points(url, SINGLE_NAME) - stored_before
    latency = ", ".join(f"{k} {v:.1f} ms" for k, v in result.latency_ms.items())
    notes += [
        f"{result.generator}, {args.connections} keep-alive connections, "
        f"{result.elapsed_s:.1f} s; run and pod points alternate; latency {latency}",
        f"{result.completed:,} answered 201, {result.failed} failed, {stored:,} rows stored",
        cpu.text(),
    ]
    # In-flight requests at the end may be stored without being counted; never the reverse.
    honest = result.failed == 0 and stored >= result.completed
    if not honest:
        notes.append("FAILED REQUESTS OR MISSING ROWS: the rate above is not valid")
    return Outcome(
        "single POST /api/metrics",
        f"{result.per_s:,.0f} req/s",
        f">= {TARGET_SINGLE_PER_S:,} req/s",
        honest and result.per_s >= TARGET_SINGLE_PER_S,
        notes,
    )


def series_points(count: int, run_id: int) -> list[dict[str, object]]:
    """A loss-like curve with a spike every 9,973 points, so downsampling has spikes to keep."""
    return [
        {
            "run_id": run_id,
            "name": SERIES_NAME,
            "date": format_us(SERIES_START_US + i * 1_000_000),
            "value": 10.0 if i % 9_973 == 4_000 else round(
                2.5 * math.exp(-i / 50_000) + 0.05 * math.sin(i / 37), 9
            ),
            "cumulative": False,
        }
        for i in range(count)
    ]  # fmt: skip


def batch_posts(args: argparse.Namespace, seeded: Seeded, pid: int) -> Outcome:
    points = series_points(args.series_points, seeded.series_run_id)
    bodies = [
        orjson.dumps(points[i : i + args.batch_size])
        for i in range(0, len(points), args.batch_size)
    ]
    warmup = [{**p, "run_id": seeded.single_run_id, "name": "bench/warmup"} for p in points[:1000]]
    loadgen.post_all(
        host=HOST,
        port=args.port,
        path="/api/metrics/batch",
        bodies=[orjson.dumps(warmup)],
        clients=1,
    )
    with watched(args, pid, "batch") as cpu:
        result, failures = loadgen.post_all(
            host=HOST,
            port=args.port,
            path="/api/metrics/batch",
            bodies=bodies,
            clients=args.batch_clients,
        )
    if failures:
        sys.exit(f"ingest: {len(failures)} batch POSTs failed, the first: {failures[0]}")
    per_s = len(points) / result.elapsed_s
    mib = sum(map(len, bodies)) / 2**20
    return Outcome(
        "batch POST /api/metrics/batch",
        f"{per_s:,.0f} points/s",
        f">= {TARGET_BATCH_POINTS_PER_S:,} points/s",
        per_s >= TARGET_BATCH_POINTS_PER_S,
        [
            f"{len(points):,} points in {len(bodies)} bodies of {args.batch_size:,} "
            f"({mib:.1f} MiB), {args.batch_clients} clients, {result.elapsed_s:.2f} s; "
            f"request p50 {result.latency_ms.get('p50', 0):.0f} ms",
            cpu.text(),
        ],
    )


def timed_gets(port: int, path: str, repeats: int) -> tuple[list[float], bytes]:
    """Seconds from sending each GET to holding its whole body (one warm-up not counted)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    times: list[float] = []
    body = b""
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            sys.exit(f"ingest: GET {path} answered {response.status}: {body[:300]!r}")
        if attempt:
            times.append(elapsed)
    conn.close()
    return times, body


def _median_p90_ms(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    median = ordered[len(ordered) // 2] if len(ordered) % 2 else sum(
        ordered[len(ordered) // 2 - 1 : len(ordered) // 2 + 1]
    ) / 2  # fmt: skip
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return median * 1000, p90 * 1000


def series_reads(args: argparse.Namespace, seeded: Seeded, pid: int) -> list[Outcome]:
    base = f"/api/metrics/{seeded.series_run_id}/?metric_type=run&metric_filter={SERIES_NAME}"
    outcomes = []
    raw_max = None
    for phase, label, path, target_ms in (
        ("read_raw", "raw", base, TARGET_RAW_MS),
        ("read_downsampled", "max_points=1000", f"{base}&max_points=1000", TARGET_DOWNSAMPLED_MS),
    ):
        with watched(args, pid, phase) as cpu:
            times, body = timed_gets(args.port, path, args.repeats)
        served = orjson.loads(body)[SERIES_NAME]
        top = max(float(p["value"]) for p in served)
        if label == "raw":
            raw_max = top
            if len(served) != args.series_points:
                sys.exit(
                    f"ingest: the raw series has {len(served)} points, not {args.series_points}"
                )
        elif not 0 < len(served) <= 1000 or top != raw_max:
            sys.exit(f"ingest: downsampled to {len(served)} points, max {top} (raw max {raw_max})")
        median_ms, p90_ms = _median_p90_ms(times)
        outcomes.append(
            Outcome(
                f"GET {args.series_points:,}-point series, {label}",
                f"{median_ms:.0f} ms median, {p90_ms:.0f} ms p90",
                f"<= {target_ms} ms",
                median_ms <= target_ms,
                [
                    f"{len(served):,} points, {len(body) / 2**20:.1f} MiB, {args.repeats} "
                    f"requests after a warm-up, min {min(times) * 1000:.0f} ms",
                    cpu.text(),
                ],
            )
        )
    return outcomes


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add(
        "--database-url",
        help="default: a SQLite file in a temporary folder. A PostgreSQL URL's database is "
        "created (it must not exist) and dropped afterwards",
    )
    add("--port", type=int, default=0, help="server port (default: a free one)")
    add("--server-cpu", type=int, default=0, help="core the server is pinned to")
    add("--client-cpu", type=int, default=1, help="core this load generator is pinned to")
    add(
        "--load-generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="single POSTs: wrk, the Python asyncio client, or wrk when installed (auto)",
    )
    add("--connections", type=int, default=64, help="keep-alive connections for single POSTs")
    add("--single-seconds", type=float, default=10.0, help="duration of the single-POST phase")
    add("--warmup-seconds", type=float, default=2.0, help="single-POST warm-up, not counted")
    add("--series-points", type=int, default=200_000, help="points of the series read back")
    add("--batch-size", type=int, default=5_000, help="points per batch body")
    add("--batch-clients", type=int, default=4, help="concurrent batch clients")
    add("--repeats", type=int, default=10, help="timed GETs of each kind")
    add(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the server with py-spy into DIR "
        "and print where its time goes (rates then suffer: profile in a separate run)",
    )
    add("--record", action="store_true", help="write the results into bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.profile is not None and args.record:
        parser.error(
            "--profile and --record: py-spy slows the load generator, so a profiled run's "
            "numbers are not the ones to record"
        )
    allowed = os.sched_getaffinity(0)
    if args.server_cpu == args.client_cpu or not {args.server_cpu, args.client_cpu} <= allowed:
        parser.error(f"--server-cpu and --client-cpu must be two different cores of {allowed}")
    return args


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"nproc {os.cpu_count()}, {model}, {mem_kib / 2**20:.0f} GiB RAM; "
        f"Linux {platform.release()}, Python {platform.python_version()}, distbench {__version__}"
    )


def command_line() -> str:
    python = Path(sys.executable)
    shown = os.path.relpath(python) if python.is_relative_to(Path.cwd()) else str(python)
    return shlex.join([shown, os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.port = args.port or free_port()
    background = background_busy((args.server_cpu, args.client_cpu))
    with (
        tempfile.TemporaryDirectory(prefix="distbench-bench-") as folder,
        fresh_database(args.database_url, Path(folder)) as db,
    ):
        seeded = seed(db.url)
        with running_server(db.url, args.port, args.server_cpu, Path(folder)) as pid:
            os.sched_setaffinity(0, {args.client_cpu})  # wrk and the clients inherit it
            print(
                f"server pid {pid} on core {args.server_cpu}, {db.label} {db.version}; "
                f"load generator on core {args.client_cpu}",
                flush=True,
            )
            outcomes = [single_posts(args, seeded, pid, db.url)]
            outcomes.append(batch_posts(args, seeded, pid))
            outcomes += series_reads(args, seeded, pid)
    report = results.Report(
        database=f"{db.label} {db.version}",
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(),
        command=command_line(),
        rows=[(o.measure, o.result, o.target, o.met, o.notes) for o in outcomes],
        pinning=f"server on core {args.server_cpu}, load generator on core {args.client_cpu}"
        + ("; PostgreSQL's own processes are not pinned" if db.label == "PostgreSQL" else "")
        + "; busy before the start (other work): "
        + ", ".join(f"core {c} {p:.0f}%" for c, p in background.items()),
    )
    print(report.table())
    if args.profile is not None:
        for output in sorted(args.profile.glob("*.txt")):
            print(f"\n-- profile of the server during {output.stem} --\n{spy.summary(output)}")
    if args.record:
        path = results.record(report, Path(__file__).with_name("RESULTS.md"))
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
