"""What the local backend remembers of a run on disk (``<data_dir>/runs/<job_id>/state.json``),
so a restarted server can adopt the run's workers or clean up after them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distbench.backends.limits.network import RunNet, WorkerNet


@dataclass
class WorkerState:
    pod_name: str
    rank: int
    pid: int
    create_time: float
    ip: str
    log_path: str
    cgroup: str | None = None
    namespace: str | None = None
    host_veth: str | None = None


@dataclass
class RunState:
    run_id: int
    job_id: str
    directory: str
    workers: list[WorkerState] = field(default_factory=list)
    net: dict[str, Any] | None = None
    cleaned: bool = False

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
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=1))
        temporary.replace(self.path)

    @classmethod
    def load(cls, directory: Path) -> RunState | None:
        try:
            raw = json.loads((directory / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        raw["workers"] = [WorkerState(**worker) for worker in raw["workers"]]
        return cls(**raw)


def net_as_dict(net: RunNet | None) -> dict[str, Any] | None:
    return None if net is None else asdict(net)
