"""Start a real ``distbench serve`` subprocess for a benchmark script, and stop it after."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from distbench.ports import free_port


@contextlib.contextmanager
def live_server(
    *, database_url: str | None = None, cpus: str | None = None, extra: list[str] | None = None
) -> Iterator[str]:
    """A server on a free port with its own data directory; yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="distbench-bench-") as data_dir:
        port = free_port()
        url = database_url or f"sqlite:///{Path(data_dir) / 'bench.db'}"
        command = [
            sys.executable,
            "-m",
            "distbench",
            "serve",
            "--port",
            str(port),
            "--database-url",
            url,
            "--log-level",
            "warning",
            *(extra or []),
        ]
        if cpus is not None:
            command = ["taskset", "-c", cpus, *command]
        env = {**os.environ, "DISTBENCH_DATA_DIR": data_dir}
        server = subprocess.Popen(command, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"the server exited with {server.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not answer within 60 s")
                time.sleep(0.1)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def wait_for_end(base: str, run_id: int, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = httpx.get(f"{base}/api/runs/{run_id}/").json()
        if run["state"] in ("FINISHED", "FAILED", "ABORTED"):
            return dict(run)
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not end within {timeout_s} s")
