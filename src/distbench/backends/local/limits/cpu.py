"""``num_cpus``: a CFS quota when this process may write cgroups, else CPU affinity.

cgroup v2 (``cpu.max``) where the unified hierarchy has the cpu controller; cgroup v1
(``cpu.cfs_quota_us``, what these machines have) otherwise. Without either, whole cores by
affinity, and torch's thread count follows ``num_cpus`` in every case.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from distbench.errors import LimitUnsupported

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000

Method = Literal["cgroup_v2_cpu_max", "cgroup_v1_cfs_quota", "cpu_affinity"]


def detect_method(root: Path = CGROUP_ROOT) -> tuple[Method, Path | None]:
    """The best method this process can apply, and the cgroup directory it writes under."""
    v2_controllers = root / "cgroup.controllers"
    if v2_controllers.exists() and "cpu" in v2_controllers.read_text().split():
        parent = root / "distbench"
        if _writable_dir(parent, root) and _delegate_cpu(root, parent):
            return "cgroup_v2_cpu_max", parent
    v1 = root / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists():
        parent = v1 / "distbench"
        if _writable_dir(parent, v1):
            return "cgroup_v1_cfs_quota", parent
    return "cpu_affinity", None


def _delegate_cpu(*cgroups: Path) -> bool:
    """Enable the cpu controller for the children of each of ``cgroups``, top down: in cgroup v2
    a worker's cgroup has a ``cpu.max`` only if every cgroup above it lists ``cpu`` in its
    ``cgroup.subtree_control``. Refused (EBUSY) where a cgroup above holds processes itself, as
    a container's root cgroup does; the caller then uses another method."""
    for cgroup in cgroups:
        control = cgroup / "cgroup.subtree_control"
        try:
            if "cpu" not in control.read_text().split():
                control.write_text("+cpu\n")
        except OSError:
            return False
    return True


def _writable_dir(path: Path, root: Path) -> bool:
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK) and os.access(root, os.R_OK)


@dataclass(frozen=True, slots=True)
class CpuLimit:
    """One worker's CPU limit, as applied."""

    method: Method
    cores: float
    cgroup: str | None = None
    cpu_list: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.method == "cpu_affinity":
            return f"affinity to CPUs {','.join(map(str, self.cpu_list))}"
        return f"CFS quota of {self.cores:g} cores ({self.method})"


class CpuLimiter:
    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.method, self.parent = detect_method(root)
        self.cpu_count = os.cpu_count() or 1

    def check(self, num_cpus: float) -> None:
        if self.method == "cpu_affinity" and not float(num_cpus).is_integer():
            raise LimitUnsupported(
                f"num_cpus={num_cpus:g} needs a CFS quota, and this server may not write cgroups "
                "(run it as root, or with a delegated cgroup); without that only whole cores "
                "can be given, e.g. num_cpus=1",
                details={"num_cpus": num_cpus, "method": self.method},
            )

    def cgroup_for(self, name: str) -> str | None:
        """The cgroup ``create(name, ...)`` makes, if this method uses cgroups: recorded before
        it exists, so a server killed while creating it leaves the path to remove."""
        if self.method == "cpu_affinity" or self.parent is None:
            return None
        return str(self.parent / name)

    def create(self, name: str, num_cpus: float, rank: int) -> CpuLimit:
        cgroup = self.cgroup_for(name)
        if cgroup is None:
            count = min(self.cpu_count, max(1, math.ceil(num_cpus)))
            # Spread ranks over the machine's cores so two workers do not share one core.
            first = (rank * count) % self.cpu_count
            cpus = tuple(sorted({(first + i) % self.cpu_count for i in range(count)}))
            return CpuLimit(method="cpu_affinity", cores=num_cpus, cpu_list=cpus)
        group = Path(cgroup)
        group.mkdir(exist_ok=True)
        quota_us = max(1000, round(num_cpus * PERIOD_US))
        if self.method == "cgroup_v2_cpu_max":
            (group / "cpu.max").write_text(f"{quota_us} {PERIOD_US}\n")
        else:
            (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
            (group / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
        return CpuLimit(method=self.method, cores=num_cpus, cgroup=str(group))


def wrap_command(limit: CpuLimit, command: list[str]) -> list[str]:
    """``command`` started inside its limit from its very first instruction."""
    if limit.cgroup is not None:
        procs = Path(limit.cgroup) / "cgroup.procs"
        # The shell moves itself into the cgroup, then execs: no moment runs unlimited.
        return ["/bin/sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "distbench-worker", *command]
    taskset = shutil.which("taskset")
    if taskset is not None:
        return [taskset, "-c", ",".join(map(str, limit.cpu_list)), *command]
    return command


def members(limit_cgroup: str | None) -> list[int]:
    """The pids in a worker's cgroup: the worker and everything it started, including a worker
    forked but not yet recorded by a server that was killed meanwhile."""
    if limit_cgroup is None:
        return []
    try:
        text = (Path(limit_cgroup) / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(line) for line in text.split() if line.isdigit()]


def remove(limit_cgroup: str | None, *, timeout_s: float = 5.0) -> None:
    """Kill whatever is still in a worker's cgroup, then remove it. A process that tries to
    join it afterwards (a worker forked just before) finds no cgroup and exits."""
    if limit_cgroup is None:
        return
    deadline = time.monotonic() + timeout_s
    while True:
        for pid in members(limit_cgroup):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            Path(limit_cgroup).rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            # EBUSY: killed processes leave the cgroup when they are reaped, a moment later.
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
