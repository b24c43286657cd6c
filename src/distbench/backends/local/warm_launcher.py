"""The server's handle on the warm worker launcher (``distbench.worker.launcher``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from distbench.settings import without_server_settings

log = logging.getLogger(__name__)


class LauncherUnavailable(RuntimeError):
    pass


class WarmLauncher:
    def __init__(self, *, python: str, data_dir: Path) -> None:
        self.python = python
        digest = hashlib.sha256(f"{data_dir.resolve()}:{os.getpid()}".encode()).hexdigest()[:12]
        self.socket_path = Path(tempfile.gettempdir()) / f"distbench-launcher-{digest}.sock"
        self.log_path = data_dir / "launcher.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._failed = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start importing in the background; ``spawn`` waits for it when first needed."""
        # Without the server's settings: every worker forked from the launcher starts from its
        # memory, and /proc/PID/environ of each shows the launcher's starting environment.
        env = {
            **without_server_settings(os.environ),
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.log_path.open("ab") as log_file:
                self._process = subprocess.Popen(  # noqa: S603 -- fixed arguments
                    [
                        self.python,
                        "-m",
                        "distbench.worker.launcher",
                        "--socket",
                        str(self.socket_path),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log_file,
                    env=env,
                )
        except OSError as exc:
            # A bad worker_python must not stop the server from starting: workers start cold,
            # and creating them reports the problem on the run.
            log.warning("the warm launcher could not be started (%s); workers start cold", exc)
            self._failed.set()
            return
        threading.Thread(target=self._await_ready, name="launcher-ready", daemon=True).start()

    def _await_ready(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if line.strip() == b"ready":
            self._ready.set()
        else:
            log.warning(
                "the warm launcher did not start (see %s); workers start cold", self.log_path
            )
            self._failed.set()

    def wait_ready(self, timeout_s: float) -> bool:
        """True once the launcher is serving; False if it failed or is not ready in time."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.is_set() and not self._failed.is_set():
            if time.monotonic() >= deadline:
                return False
            self._ready.wait(0.05)
        return self._ready.is_set() and self._process is not None and self._process.poll() is None

    def spawn(self, request: dict[str, Any]) -> int:
        """Fork one worker as ``request`` describes; its pid. ``LauncherUnavailable`` if the
        launcher is not there (the caller then starts the worker cold)."""
        with self._lock:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                    conn.settimeout(30)
                    conn.connect(str(self.socket_path))
                    conn.sendall(json.dumps(request).encode() + b"\n")
                    answer = b""
                    while not answer.endswith(b"\n"):
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        answer += chunk
            except OSError as exc:
                raise LauncherUnavailable(f"warm launcher unreachable: {exc}") from exc
        try:
            return int(json.loads(answer)["pid"])
        except (ValueError, KeyError) as exc:
            raise LauncherUnavailable(f"warm launcher answered {answer!r}") from exc

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
