"""The seam between the orchestrator and whatever runs workers (processes, a cluster, a fake)."""

from __future__ import annotations

import math
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from distbench.store.records import NewRun, RunRecord
from distbench.worker.env import WorkerEnv

PodPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]
# How much of a failed worker's output a run's ``job_metadata`` keeps.
LOG_TAIL_LINES = 30


def default_dist_backend(*, gpu: bool) -> str:
    """The torch.distributed backend of a run that names none: nccl on GPUs, else gloo."""
    return "nccl" if gpu else "gloo"


def run_worker_env(run: RunRecord, **placement: Any) -> WorkerEnv:
    """A worker's environment from what its run says (size, task, limits, device); each backend
    adds ``placement``: where the worker sits and how it meets the others and the server."""
    return WorkerEnv(
        world_size=run.num_workers,
        dist_backend=run.backend,
        run_id=run.id,
        benchmark=run.benchmark,
        options=run.options,
        num_cpus=run.num_cpus,
        device="cuda" if run.gpu else "cpu",
        **placement,
    )


def torch_threads(run: RunRecord) -> str:
    """``OMP_NUM_THREADS`` for a worker: one thread per core it may use, at least one."""
    return str(max(1, math.ceil(run.num_cpus)))


def dist_backends(*, gpu: bool) -> tuple[str, ...]:
    """The torch.distributed backends workers can use, the default first: nccl reduces GPU
    tensors only, and gloo works on both; mpi nowhere (torch's wheels are built without it)."""
    return (default_dist_backend(gpu=True), "gloo") if gpu else ("gloo",)


@dataclass(frozen=True, slots=True)
class PodInfo:
    """A worker as GET /api/pods/ shows it."""

    name: str
    labels: Mapping[str, str]
    phase: PodPhase
    ip: str
    run_id: int | None = None
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class RunStatus:
    """What the backend sees of a run's workers right now."""

    state: Literal["starting", "running", "succeeded", "failed", "gone"]
    reason: str = ""
    exit_codes: Mapping[str, int | None] = field(default_factory=dict)
    # The last lines of each failed worker's output, by pod name.
    log_tails: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LaunchReport:
    """How the backend applied a run's limits, recorded in ``job_metadata``."""

    pods: list[PodInfo]
    applied: Mapping[str, object] = field(default_factory=dict)


@runtime_checkable
class ClusterBackend(Protocol):
    """Creates, watches and removes the workers of runs.

    Implementations must be safe to call from several threads. ``check`` runs before the run is
    stored and refuses, with a 400, (``LimitUnsupported``) a limit the backend cannot enforce.
    """

    name: str

    def check(self, new: NewRun) -> None:
        """Raise ``LimitUnsupported`` or ``InvalidInput`` if ``new`` cannot be honoured here."""

    def launch(self, run: RunRecord, *, server_url: str, run_token: str | None) -> LaunchReport:
        """Create the run's workers (returns once they are created, not finished)."""

    def status(self, run: RunRecord) -> RunStatus:
        """The run's workers' state as the backend sees it now."""

    def list_pods(self) -> list[PodInfo]:
        """Every worker pod that exists now."""

    def resource_counters(self, pod_name: str) -> Mapping[str, float]:
        """The pod's cAdvisor-named counters and gauges now; empty if the pod is gone."""

    def logs(self, run: RunRecord, *, tail_lines: int | None = None) -> Mapping[str, str]:
        """Each worker's combined stdout/stderr, by pod name."""

    def stop(self, run: RunRecord, *, grace_s: float) -> None:
        """Stop the run's workers (SIGTERM, then SIGKILL after ``grace_s``) and remove what
        was created for them. Idempotent; called for every run that ends, however it ends."""

    def reconcile(self, active: Sequence[RunRecord]) -> None:
        """At server start: take over the workers of ``active`` runs and clean up after
        every other run an earlier server process left behind."""

    def close(self) -> None:
        """Release what the backend holds (the server is shutting down; workers keep running)."""


def describe_exit(code: int) -> str:
    """A worker's exit code in words, as every backend reports it: a negative code is the
    signal that killed it; above 128, a shell's way of saying the same."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    if code > 128 and code - 128 in {s.value for s in signal.Signals}:
        return f"exited with code {code} ({signal.Signals(code - 128).name})"
    return f"exited with code {code}"
