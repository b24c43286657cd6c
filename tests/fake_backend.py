"""FAKE backend, for tests only: it starts nothing. Runs and pods live in memory and tests move
them through their phases, so the API and orchestrator are tested without processes."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from distbench.backends.base import LaunchReport, PodInfo, PodPhase, RunStatus
from distbench.backends.local.launch import check_working_dir
from distbench.errors import BackendUnavailable, LimitUnsupported
from distbench.store.records import NewRun, RunRecord


class FakeBackend:
    name = "fake"

    def __init__(self, *, release: str = "distbench", supports_bandwidth: bool = True) -> None:
        self.release = release
        self.supports_bandwidth = supports_bandwidth
        self.fail_launch: str | None = None
        self._lock = threading.Lock()
        self._pods: dict[str, PodInfo] = {}
        self._status: dict[int, RunStatus] = {}
        self._counters: dict[str, dict[str, float]] = {}
        self.launched: list[int] = []
        self.stopped: list[int] = []

    # -- the protocol ------------------------------------------------------------------------
    def check(self, new: NewRun) -> None:
        if new.gpu:
            raise LimitUnsupported("the fake backend has no GPUs")
        if new.max_bandwidth is not None and not self.supports_bandwidth:
            raise LimitUnsupported("the fake backend was told it cannot cap bandwidth")
        if new.working_dir is not None:
            check_working_dir(new.working_dir)  # as the local backend, whose stand-in it is

    def launch(self, run: RunRecord, *, server_url: str, run_token: str | None) -> LaunchReport:
        if self.fail_launch:
            raise BackendUnavailable(self.fail_launch)
        pods = [
            PodInfo(
                name=f"{self.release}-worker-{run.id}-{rank}",
                labels={
                    "app": "distbench",
                    "component": "worker",
                    "release": self.release,
                    "run-id": str(run.id),
                },
                phase="Running",
                ip=f"198.18.0.{rank + 2}",
                run_id=run.id,
                rank=rank,
            )
            for rank in range(run.num_workers)
        ]
        with self._lock:
            for pod in pods:
                self._pods[pod.name] = pod
                self._counters[pod.name] = {"container_cpu_usage_seconds_total": 0.0}
            self._status[run.id] = RunStatus(state="running")
            self.launched.append(run.id)
        return LaunchReport(pods=pods, applied={"cpu_limit": "fake", "bandwidth_limit": "fake"})

    def status(self, run: RunRecord) -> RunStatus:
        with self._lock:
            return self._status.get(run.id, RunStatus(state="gone", reason="unknown to the fake"))

    def list_pods(self) -> list[PodInfo]:
        with self._lock:
            return sorted(self._pods.values(), key=lambda pod: pod.name)

    def resource_counters(self, pod_name: str) -> Mapping[str, float]:
        with self._lock:
            return dict(self._counters.get(pod_name, {}))

    def logs(self, run: RunRecord, *, tail_lines: int | None = None) -> Mapping[str, str]:
        with self._lock:
            names = [pod.name for pod in self._pods.values() if pod.run_id == run.id]
        return {name: f"fake log of {name}\n" for name in names}

    def stop(self, run: RunRecord, *, grace_s: float) -> None:
        self._end(run.id, RunStatus(state="gone", reason="stopped"), phase="Failed")
        with self._lock:
            self.stopped.append(run.id)

    def reconcile(self, active: Sequence[RunRecord]) -> None:
        return None

    def close(self) -> None:
        return None

    # -- what tests use to drive it ----------------------------------------------------------
    def finish(self, run_id: int) -> None:
        self._end(run_id, RunStatus(state="succeeded"), phase="Succeeded")

    def fail(self, run_id: int, reason: str, log_tails: Mapping[str, str] | None = None) -> None:
        status = RunStatus(state="failed", reason=reason, log_tails=log_tails or {})
        self._end(run_id, status, phase="Failed")

    def _end(self, run_id: int, status: RunStatus, *, phase: PodPhase) -> None:
        with self._lock:
            self._status[run_id] = status
            for name, pod in list(self._pods.items()):
                if pod.run_id == run_id:
                    self._pods[name] = PodInfo(
                        pod.name, pod.labels, phase, pod.ip, pod.run_id, pod.rank
                    )
