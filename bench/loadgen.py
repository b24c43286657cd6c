"""Load generators for ``bench/ingest.py``: wrk driven by a Lua script, and a small asyncio HTTP/1.1
keep-alive client (no httpx, no aiohttp: their per-request overhead would be measured instead of
the server's)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # the server's own extra (uvicorn[standard]) brings uvloop; asyncio's loop works too
    import uvloop
except ImportError:  # pragma: no cover - depends on the install
    uvloop = None  # type: ignore[assignment]

WRK_INSTALL_HINT = "install it with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`"


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one load phase achieved. ``latency_ms`` maps a percentile label to milliseconds."""

    generator: str
    completed: int
    failed: int
    elapsed_s: float
    latency_ms: dict[str, float]

    @property
    def per_s(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0


# -- wrk ------------------------------------------------------------------------------------------

# Bodies alternate between a run point and a pod point (workers post the first, MLBench's metric
# collector posted the second), each with its own date and value, as a real stream would.
_WRK_LUA = """
local counter = 0
local headers = {["Content-Type"] = "application/json"}
request = function()
  counter = counter + 1
  local owner
  if counter %% 2 == 0 then
    owner = '"run_id":%d'
  else
    owner = '"pod_name":"%s"'
  end
  local body = string.format(
    '{%%s,"name":"bench/single","date":"%%s.%%06dZ","value":%%d.25,"cumulative":false}',
    owner, os.date("!%%Y-%%m-%%dT%%H:%%M:%%S"), counter %% 1000000, counter)
  return wrk.format("POST", "/api/metrics", headers, body)
end
"""

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    *, base_url: str, run_id: int, pod_name: str, connections: int, duration_s: float
) -> LoadResult:
    """Single-point POSTs from ``connections`` keep-alive connections for ``duration_s``."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError(f"wrk is not installed: {WRK_INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="distbench-wrk-") as folder:
        script = Path(folder) / "post.lua"
        script.write_text(_WRK_LUA % (run_id, pod_name))
        # One wrk thread: the load generator has one core, and more threads would only contend.
        command = [
            wrk,
            "--threads=1",
            f"--connections={connections}",
            f"--duration={max(1, round(duration_s))}s",
            "--timeout=10s",
            "--latency",
            f"--script={script}",
            f"{base_url}/api/metrics",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> LoadResult:
    requests = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if requests is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    total = int(requests.group(1))
    elapsed_s = float(requests.group(2)) * _UNIT_MS[requests.group(3)] / 1000
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    rejected = int(non_2xx.group(1)) if non_2xx else 0
    failed = rejected + (sum(int(errors.group(i)) for i in range(1, 5)) if errors else 0)
    latency = {
        f"p{m.group(1)}": float(m.group(2)) * _UNIT_MS[m.group(3)]
        for m in re.finditer(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    }
    return LoadResult("wrk", total - rejected, failed, elapsed_s, latency)


# -- asyncio HTTP/1.1 client ----------------------------------------------------------------------


class HttpError(RuntimeError):
    pass


def post_request(host: str, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one request on a kept-alive connection; the status and the whole body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _percentiles(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {}
    ordered = sorted(latencies_s)
    return {
        f"p{p}": ordered[min(len(ordered) - 1, len(ordered) * p // 100)] * 1000
        for p in (50, 90, 99)
    }


async def _timed_loop(
    host: str,
    port: int,
    take: Callable[[], bytes | None],
    expect_status: int,
    latencies: list[float],
    failures: list[str],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (request := take()) is not None:
            started = time.perf_counter()
            status, body = await exchange(reader, writer, request)
            latencies.append(time.perf_counter() - started)
            if status != expect_status:
                failures.append(f"{status} {body[:300]!r}")
    finally:
        writer.close()


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if uvloop is not None:
        uvloop.run(main())
    else:
        asyncio.run(main())


def loop_name() -> str:
    return "uvloop" if uvloop is not None else "asyncio"


def post_for(
    *,
    host: str,
    port: int,
    make_body: Callable[[int], bytes],
    connections: int,
    duration_s: float,
) -> LoadResult:
    """Single-point POSTs from ``connections`` keep-alive connections for ``duration_s``."""
    counter = 0
    deadline = 0.0
    latencies: list[float] = []
    failures: list[str] = []

    def take() -> bytes | None:
        nonlocal counter
        if time.perf_counter() >= deadline:
            return None
        counter += 1
        return post_request(host, "/api/metrics", make_body(counter))

    elapsed_s = 0.0

    async def main() -> None:
        nonlocal deadline, elapsed_s
        started = time.perf_counter()
        deadline = started + duration_s
        await asyncio.gather(
            *(_timed_loop(host, port, take, 201, latencies, failures) for _ in range(connections))
        )
        elapsed_s = time.perf_counter() - started

    _run(main)
    return LoadResult(
        f"python {loop_name()}",
        len(latencies) - len(failures),
        len(failures),
        elapsed_s,
        _percentiles(latencies),
    )


def post_all(
    *, host: str, port: int, path: str, bodies: list[bytes], clients: int
) -> tuple[LoadResult, list[str]]:
    """POST every body once, ``clients`` at a time; the result counts requests. Also returns
    the failures' statuses and bodies, so a rejected batch is never mistaken for a fast one."""
    requests = [post_request(host, path, body) for body in bodies]
    requests.reverse()
    latencies: list[float] = []
    failures: list[str] = []

    def take() -> bytes | None:
        return requests.pop() if requests else None

    elapsed_s = 0.0

    async def main() -> None:
        nonlocal elapsed_s
        started = time.perf_counter()
        await asyncio.gather(
            *(_timed_loop(host, port, take, 201, latencies, failures) for _ in range(clients))
        )
        elapsed_s = time.perf_counter() - started

    _run(main)
    result = LoadResult(
        f"python {loop_name()}",
        len(latencies) - len(failures),
        len(failures),
        elapsed_s,
        _percentiles(latencies),
    )
    return result, failures
