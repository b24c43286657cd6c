"""Ingest benchmark: how fast the real ``distbench serve`` takes metric points and serves series.

The server runs pinned to one core (``taskset``) and this script, the load generator, to another,
so neither steals the other's CPU. It prints, against the targets of the issue:

- single-point ``POST /api/metrics`` requests/s from many concurrent keep-alive connections
  (``wrk`` with a Lua script when installed, else a Python asyncio client, which may itself be
  the bottleneck: the table says which was used);
- batch points/s through ``POST /api/metrics/batch`` (5,000-point bodies, a few clients);
- the time to serve one run's 200,000-point series raw and with ``max_points=1000``.

The database is seeded with the store functions before the server starts (two finished runs,
each with a pod), and the batch phase writes exactly the series the read phase then reads. Each
phase also reports the server's CPU time per request or point, which other work on the machine
changes much less than it changes the rates.

    .venv/bin/python bench/ingest.py                       # SQLite file in a temporary folder
    .venv/bin/python bench/ingest.py --database-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/distbench_bench   # created, then dropped
    .venv/bin/python bench/ingest.py --record              # also write bench/RESULTS.md
    .venv/bin/python bench/ingest.py --profile /tmp/prof   # where the server's time goes

Performance is printed here, never asserted in tests (STYLE.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

import cpu
import loadgen
import results
import spy
from distbench import __version__
from distbench.timefmt import format_us
from ingest_setup import (
    HOST,
    Database,
    Seeded,
    count_points,
    free_port,
    fresh_database,
    running_server,
    seed,
)

SINGLE_NAME = "bench/single"
SERIES_NAME = "bench/series"
SERIES_START_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z; one point per second after it

TARGET_SINGLE_PER_S = 2_500
TARGET_BATCH_POINTS_PER_S = 100_000
TARGET_RAW_MS = 300
TARGET_DOWNSAMPLED_MS = 50


@dataclass(frozen=True, slots=True)
class Bench:
    """What every phase needs: the options, the seeded ids, the running server."""

    args: argparse.Namespace
    seeded: Seeded
    server_pid: int
    db: Database


@contextmanager
def watched(bench: Bench, phase: str) -> Iterator[cpu.CpuUse]:
    """CPU use of a phase, and with ``--profile`` the server's stacks sampled during it."""
    args = bench.args
    cores = (args.server_cpu, args.client_cpu)
    with cpu.watch(bench.server_pid, cores, bench.db.postgres_name) as use:
        if args.profile is None:
            yield use
            return
        args.profile.mkdir(parents=True, exist_ok=True)
        with spy.sampled(bench.server_pid, args.profile / f"{phase}.txt"):
            yield use


# -- single POSTs ---------------------------------------------------------------------------


def single_posts(bench: Bench) -> results.Row:
    args, seeded = bench.args, bench.seeded
    use_wrk = args.load_generator == "wrk" or (
        args.load_generator == "auto" and loadgen.wrk_path() is not None
    )
    if use_wrk and loadgen.wrk_path() is None:
        sys.exit(f"ingest: --load-generator wrk, but {loadgen.WRK_INSTALL_HINT}")
    notes = []
    if not use_wrk and args.load_generator == "auto":
        notes.append(f"wrk not found ({loadgen.WRK_INSTALL_HINT}), so the Python client")

    def body(counter: int) -> bytes:
        owner: dict[str, object] = (
            {"run_id": seeded.single_run_id}
            if counter % 2 == 0
            else {"pod_name": seeded.single_pod}
        )
        point = {"name": SINGLE_NAME, "date": format_us(SERIES_START_US + counter)}
        return orjson.dumps({**owner, **point, "value": counter + 0.25, "cumulative": False})

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
    stored_before = count_points(bench.db.url, SINGLE_NAME)
    with watched(bench, "single") as use:
        result = load(args.single_seconds)
    stored = count_points(bench.db.url, SINGLE_NAME) - stored_before
    latency = ", ".join(f"{k} {v:.0f} ms" for k, v in result.latency_ms.items())
    notes += [
        f"{result.generator}, {args.connections} keep-alive connections for "
        f"{result.elapsed_s:.1f} s, run and pod points alternating; latency {latency}",
        f"{result.completed:,} answered 201, {result.failed} failed, {stored:,} rows stored",
        use.text(result.completed, "request"),
    ]
    # Requests in flight when the load stops may be stored without being counted; never the
    # reverse, so fewer rows than answers means the rate is wrong.
    valid = result.failed == 0 and stored >= result.completed
    if not valid:
        notes.append("FAILED REQUESTS OR MISSING ROWS: the rate above is not valid")
    return results.Row(
        measure="single POST /api/metrics",
        result=f"{result.per_s:,.0f} req/s",
        target=f">= {TARGET_SINGLE_PER_S:,} req/s",
        met=valid and result.per_s >= TARGET_SINGLE_PER_S,
        server_cpu=use.server_each(result.completed, "request"),
        notes=notes,
    )


# -- batches ----------------------------------------------------------------------------------


def series_points(count: int, run_id: int) -> list[dict[str, object]]:
    """A loss-like curve with a spike every 9,973 points, so downsampling has spikes to keep."""
    return [
        {
            "run_id": run_id,
            "name": SERIES_NAME,
            "date": format_us(SERIES_START_US + i * 1_000_000),
            "value": 10.0
            if i % 9_973 == 4_000
            else round(2.5 * math.exp(-i / 50_000) + 0.05 * math.sin(i / 37), 9),
            "cumulative": False,
        }
        for i in range(count)
    ]


def batch_posts(bench: Bench) -> results.Row:
    args = bench.args
    points = series_points(args.series_points, bench.seeded.series_run_id)
    size = args.batch_size
    bodies = [orjson.dumps(points[i : i + size]) for i in range(0, len(points), size)]
    warmup = [
        {**p, "run_id": bench.seeded.single_run_id, "name": "bench/warmup"} for p in points[:size]
    ]

    def post(bodies: list[bytes], clients: int) -> loadgen.LoadResult:
        result, failures = loadgen.post_all(
            host=HOST, port=args.port, path="/api/metrics/batch", bodies=bodies, clients=clients
        )
        if failures:
            sys.exit(f"ingest: {len(failures)} batch POSTs failed, the first: {failures[0]}")
        return result

    post([orjson.dumps(warmup)], 1)
    with watched(bench, "batch") as use:
        result = post(bodies, args.batch_clients)
    per_s = len(points) / result.elapsed_s
    mib = sum(map(len, bodies)) / 2**20
    return results.Row(
        measure="batch POST /api/metrics/batch",
        result=f"{per_s:,.0f} points/s",
        target=f">= {TARGET_BATCH_POINTS_PER_S:,} points/s",
        met=per_s >= TARGET_BATCH_POINTS_PER_S,
        server_cpu=use.server_each(len(points), "point"),
        notes=[
            f"{len(points):,} points in {len(bodies)} bodies of {size:,} ({mib:.1f} MiB) from "
            f"{args.batch_clients} clients in {result.elapsed_s:.2f} s; "
            f"request p50 {result.latency_ms.get('p50', 0):.0f} ms",
            use.text(len(points), "point"),
        ],
    )


# -- reads ------------------------------------------------------------------------------------


def timed_gets(port: int, path: str, repeats: int) -> tuple[list[float], bytes]:
    """Seconds from sending each GET to holding its whole body (after one untimed warm-up)."""
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


def series_reads(bench: Bench) -> list[results.Row]:
    args = bench.args
    base = f"/api/metrics/{bench.seeded.series_run_id}/?metric_type=run&metric_filter={SERIES_NAME}"
    outcomes = []
    raw_top = math.nan
    for phase, label, path, target_ms in (
        ("read_raw", "raw", base, TARGET_RAW_MS),
        ("read_downsampled", "max_points=1000", f"{base}&max_points=1000", TARGET_DOWNSAMPLED_MS),
    ):
        with watched(bench, phase) as use:
            times, body = timed_gets(args.port, path, args.repeats)
        served = orjson.loads(body)[SERIES_NAME]
        top = max(float(p["value"]) for p in served)
        # Answers that are fast because they are wrong must not pass.
        if label == "raw":
            raw_top = top
            if len(served) != args.series_points:
                sys.exit(f"ingest: the series has {len(served)} points, not {args.series_points}")
        elif not 0 < len(served) <= 1000 or top != raw_top:
            sys.exit(f"ingest: downsampled to {len(served)} points, top {top} (raw: {raw_top})")
        median_ms = 1000 * statistics.median(times)
        p90_ms = 1000 * sorted(times)[max(0, math.ceil(0.9 * len(times)) - 1)]
        outcomes.append(
            results.Row(
                measure=f"GET {args.series_points:,}-point series, {label}",
                result=f"{median_ms:.0f} ms median, {p90_ms:.0f} ms p90",
                target=f"<= {target_ms} ms",
                met=median_ms <= target_ms,
                server_cpu=use.server_each(args.repeats + 1, "GET"),
                notes=[
                    f"{len(served):,} points, {len(body) / 2**20:.1f} MiB; {args.repeats} GETs "
                    f"after a warm-up, min {1000 * min(times):.0f} ms",
                    use.text(args.repeats + 1, "GET"),
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
        help="sample the server with py-spy into DIR and print where its time goes "
        "(the load generator then shares its core with py-spy: profile in a separate run)",
    )
    add("--record", action="store_true", help="write the results into bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.profile is not None and args.record:
        parser.error("--profile slows the load generator: record an unprofiled run")
    allowed = os.sched_getaffinity(0)
    if args.server_cpu == args.client_cpu or not {args.server_cpu, args.client_cpu} <= allowed:
        parser.error(f"--server-cpu and --client-cpu must be two different cores of {allowed}")
    return args


def machine(version: str) -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"nproc {os.cpu_count()}, {model}, {mem_kib / 2**20:.0f} GiB RAM; "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        f"distbench {__version__} at {version}"
    )


def code_version() -> str:
    """The commit measured and, when ``src/`` differs from it, a digest of the tree, so two sets
    measured on different uncommitted code can be told apart."""
    root = Path(__file__).resolve().parent.parent

    def git(*words: str) -> str:
        # --no-optional-locks: reading the state must not rewrite the index under a live checkout.
        command = ["git", "--no-optional-locks", "-C", str(root), *words]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "src")
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    if not changed:
        return f"commit {head}"
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted((root / "src").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"commit {head} with uncommitted changes in src/ (digest {digest.hexdigest()[:8]})"


def command_line() -> str:
    python = Path(sys.executable)
    shown = os.path.relpath(python) if python.is_relative_to(Path.cwd()) else str(python)
    return shlex.join([shown, os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.port = args.port or free_port()
    cores = (args.server_cpu, args.client_cpu)
    version = code_version()  # what the server is about to load
    background = cpu.busy_now(cores)
    with (
        tempfile.TemporaryDirectory(prefix="distbench-bench-") as folder,
        fresh_database(args.database_url, Path(folder)) as db,
    ):
        seeded = seed(db.url)
        with running_server(db.url, args.port, args.server_cpu, Path(folder)) as pid:
            os.sched_setaffinity(0, {args.client_cpu})  # wrk and py-spy inherit it
            print(
                f"server pid {pid} on core {args.server_cpu}, {db.label} {db.version}", flush=True
            )
            bench = Bench(args, seeded, pid, db)
            outcomes = [single_posts(bench), batch_posts(bench), *series_reads(bench)]
    pinning = f"Server on core {args.server_cpu}, load generator on core {args.client_cpu}"
    if db.postgres_name:
        pinning += " (PostgreSQL's own processes are not pinned)"
    busy = ", ".join(f"core {c} {p:.0f}%" for c, p in background.items())
    report = results.Report(
        database=f"{db.label} {db.version}",
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(version),
        command=command_line(),
        pinning=f"{pinning}; busy with other work just before: {busy}",
        rows=outcomes,
    )
    print(report.table())
    if args.profile is not None:
        for output in sorted(args.profile.glob("*.txt")):
            print(f"\n-- the server during {output.stem} --\n{spy.summary(output)}")
    if code_version() != version:
        # The numbers belong to no single version of the code: never record them.
        sys.exit("ingest: src/ changed while the benchmark ran; run it again")
    if args.record:
        print(f"\nrecorded in {results.record(report, Path(__file__).with_name('RESULTS.md'))}")


if __name__ == "__main__":
    main()
