"""The files a worker leaves for its backend in the run's directory: ``<pod>.ready`` once the
process group is joined, ``<pod>.usage`` (its CPU seconds) and ``<pod>.exit`` (its exit code)
when it ends. They outlive the server, so a restarted server still learns how each worker ended
and what it cost; a worker that leaves no exit file is taken to have been killed (SIGKILL).

Both sides live here, the writer (``StatusFiles``, in the worker) and the readers (in the
backend), so the file names and formats have one spelling."""

from __future__ import annotations

import json
import os
import resource
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from distbench.worker.env import WorkerVar


class StatusFile(StrEnum):
    """A kind of status file; its name is ``<pod>.<kind>``."""

    READY = "ready"
    EXIT = "exit"
    USAGE = "usage"
    # Metric points the server could not take yet (see Backlog), beside the worker's log.
    METRICS_SPOOL = "metrics.jsonl"


def status_file_name(pod_name: str, kind: StatusFile) -> str:
    return f"{pod_name}.{kind}"


def status_path(directory: Path, pod_name: str, kind: StatusFile) -> Path:
    return directory / status_file_name(pod_name, kind)


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """A worker's CPU seconds, its own and its children's."""

    user_s: float
    system_s: float


class StatusFiles:
    """The writing side, in the worker: one pod's files in ``directory`` (None: write none,
    as under plain torchrun)."""

    def __init__(self, directory: Path | None, pod_name: str) -> None:
        self.directory = directory
        self.pod_name = pod_name
        # The main thread and the SIGTERM watchdog may both get to ``exited``: the first wins.
        self._lock = threading.Lock()
        self.exit_code: int | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> StatusFiles:
        """Where the launcher asked for the files, read leniently (the command wrapper must
        write its exit file even when the rest of the environment would not pass a check)."""
        env = os.environ if environ is None else environ
        directory = env.get(WorkerVar.STATUS_DIR)
        return cls(Path(directory) if directory else None, env.get(WorkerVar.POD_NAME, ""))

    def _write(self, kind: StatusFile, text: str) -> None:
        if self.directory is None:
            return
        _write_atomically(status_path(self.directory, self.pod_name, kind), text)

    def ready(self) -> None:
        self._write(StatusFile.READY, "1\n")

    def exited(self, code: int) -> None:
        """Write the usage and exit files, once: later calls change nothing."""
        with self._lock:
            if self.exit_code is not None:
                return
            self.exit_code = code
            # The process's own CPU account first: once it is gone nobody else can read it.
            own, children = (
                resource.getrusage(resource.RUSAGE_SELF),
                resource.getrusage(resource.RUSAGE_CHILDREN),
            )
            usage = {
                "user_s": own.ru_utime + children.ru_utime,
                "system_s": own.ru_stime + children.ru_stime,
            }
            self._write(StatusFile.USAGE, json.dumps(usage) + "\n")
            self._write(StatusFile.EXIT, _exit_text(code))


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _exit_text(code: int) -> str:
    return f"{code}\n"


# -- the reading side, in the backend ---------------------------------------------------------
def is_ready(directory: Path, pod_name: str) -> bool:
    return status_path(directory, pod_name, StatusFile.READY).exists()


def read_exit_code(directory: Path, pod_name: str) -> int | None:
    """The code the worker (or whoever saw it end) recorded; None when there is none."""
    try:
        return int(status_path(directory, pod_name, StatusFile.EXIT).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def exit_recorded_at(directory: Path, pod_name: str) -> float | None:
    """When the exit file was written (seconds since the epoch); None when there is none."""
    try:
        return status_path(directory, pod_name, StatusFile.EXIT).stat().st_mtime
    except FileNotFoundError:
        return None


def record_exit(exit_file: Path, code: int) -> None:
    """The exit code of a worker seen to end by its parent, unless the worker wrote its own."""
    if not exit_file.exists():
        exit_file.write_text(_exit_text(code))


def read_usage(directory: Path, pod_name: str) -> CpuUsage | None:
    """The CPU seconds the worker recorded as it ended; None when it recorded none."""
    try:
        usage = json.loads(status_path(directory, pod_name, StatusFile.USAGE).read_text())
        return CpuUsage(user_s=float(usage["user_s"]), system_s=float(usage["system_s"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
