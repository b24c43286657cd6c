"""What the local backend remembers of a run on disk (``<data_dir>/runs/<job_id>/state.json``),
so a restarted server can adopt the run's workers or clean up after them.

Written ahead: each resource (the run's network, a worker's cgroup, a worker) is recorded before
it is created, and the file is replaced atomically and synced, so a server killed at any moment
of a launch leaves a record of everything there may be to remove. A worker is recorded without
a pid before it is forked; one forked but not yet recorded is found by its cgroup and its log.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distbench.backends.local.limits.network import RunNet, WorkerNet


def runs_directory(data_dir: Path) -> Path:
    """Where the local backend keeps its runs, one directory each."""
    return data_dir / "runs"


def run_directory(data_dir: Path, job_id: str) -> Path:
    """A run's directory: its state.json, and its workers' logs and status files (the one
    place that says where it is; ``LocalRun.directory`` records it)."""
    return runs_directory(data_dir) / job_id


@dataclass
class WorkerState:
    pod_name: str
    rank: int
    # None until the worker is forked (it is recorded before, with its cgroup and namespace).
    pid: int | None
    create_time: float | None
    ip: str
    log_path: str
    cgroup: str | None = None
    namespace: str | None = None
    host_veth: str | None = None


@dataclass
class LocalRun:
    """What the local backend keeps on disk about one run (its workers and network), so a
    restarted server can adopt or clean it up; the run's lifecycle state is ``RunState``."""

    run_id: int
    job_id: str
    directory: str
    workers: list[WorkerState] = field(default_factory=list)
    net: dict[str, Any] | None = None
    cleaned: bool = False
    # True once every worker is started; a run a server left unlaunched cannot be adopted.
    launched: bool = False

    @property
    def path(self) -> Path:
        return Path(self.directory) / "state.json"

    def run_net(self) -> RunNet | None:
        if self.net is None:
            return None
        workers = tuple(WorkerNet(**worker) for worker in self.net["workers"])
        return RunNet(
            bridge=self.net["bridge"],
            subnet=self.net["subnet"],
            workers=workers,
            rate_mbit=self.net["rate_mbit"],
        )

    def save(self) -> None:
        """Replace state.json atomically, synced: what it records is on disk before the caller
        goes on to create it."""
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as handle:
            handle.write(json.dumps(asdict(self), indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @classmethod
    def load(cls, directory: Path) -> LocalRun | None:
        try:
            raw = json.loads((directory / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        raw["workers"] = [WorkerState(**worker) for worker in raw["workers"]]
        # Written before ``launched`` existed: such files were only saved once launched.
        raw.setdefault("launched", True)
        return cls(**raw)


def net_as_dict(net: RunNet | None) -> dict[str, Any] | None:
    return None if net is None else asdict(net)
