"""One server per data directory: ``<data_dir>/server.lock``, held with ``flock`` for the life of
the server process.

Two servers on one data directory would share the workers' relay socket and run state, and the
second would silently take the first one's workers over. The lock is released by the kernel when
its holder exits, ``kill -9`` included, so a crashed server never blocks its own restart; the
file says who holds it (pid and port), for the refusal's message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from distbench.errors import DistbenchError

LOCK_NAME = "server.lock"


class DataDirInUse(DistbenchError):
    """Another server holds the data directory (or it cannot be locked at all)."""


@dataclass
class _Held:
    fd: int
    count: int


# One lock per data directory and process: a process may take it more than once (the CLI before
# it touches anything, then the app's lifespan), and only its last release lets it go.
_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def acquire(data_dir: Path, *, port: int) -> Path:
    """Take the data directory's lock, or raise ``DataDirInUse`` naming the server holding it.
    Returns the lock file's path."""
    path = (data_dir / LOCK_NAME).resolve()
    with _guard:
        held = _held.get(path)
        if held is not None:
            held.count += 1
            return path
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            # Not inherited by the workers this process starts: a worker outliving the server
            # must not keep its restart out.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DataDirInUse(f"cannot lock the data directory {data_dir}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise DataDirInUse(
                f"another distbench server ({holder}) is using the data directory {data_dir}: "
                "stop it first, or give this one its own DISTBENCH_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "port": port}).encode() + b"\n", 0)
        _held[path] = _Held(fd=fd, count=1)
        return path


def release(data_dir: Path) -> None:
    """Give back one ``acquire`` of this process; the last one unlocks the directory."""
    path = (data_dir / LOCK_NAME).resolve()
    with _guard:
        held = _held.get(path)
        if held is None:
            return
        held.count -= 1
        if held.count > 0:
            return
        del _held[path]
        with contextlib.suppress(OSError):
            os.ftruncate(held.fd, 0)
        os.close(held.fd)


def _describe_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {int(holder['pid'])}, port {int(holder['port'])}"
    except (OSError, ValueError, KeyError, TypeError):
        # Between the holder's lock and its write: it has not said who it is yet.
        return "pid and port not yet recorded"
