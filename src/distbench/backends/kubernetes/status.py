"""Reading Kubernetes objects (plain JSON dicts) as distbench sees them: pods as ``PodInfo``,
a run's Job and pods as a ``RunStatus``, a kubelet Summary document as cAdvisor-named counters.

Pure functions, so every case (unschedulable, image pull errors, OOM kills, deadlines) is
tested on documents without a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from distbench import cadvisor
from distbench.backends.base import PodInfo, PodPhase, RunStatus, describe_exit
from distbench.backends.kubernetes.manifests import COMPLETION_INDEX, WORKER_CONTAINER

Obj = Mapping[str, Any]
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
# Waiting reasons that are a normal step of starting, not a problem worth reporting.
ROUTINE_WAITING = frozenset({"ContainerCreating", "PodInitializing"})


def pod_rank(pod: Obj) -> int | None:
    metadata = pod.get("metadata", {})
    raw = metadata.get("annotations", {}).get(COMPLETION_INDEX) or metadata.get("labels", {}).get(
        COMPLETION_INDEX
    )
    return int(raw) if raw is not None and str(raw).isdigit() else None


def pod_run_id(pod: Obj) -> int | None:
    raw = pod.get("metadata", {}).get("labels", {}).get("run-id")
    return int(raw) if raw is not None and str(raw).isdigit() else None


def pod_phase(pod: Obj) -> PodPhase:
    phase = pod.get("status", {}).get("phase", "Pending")
    return cast(PodPhase, phase) if phase in PHASES else "Unknown"


def pod_info(pod: Obj) -> PodInfo:
    metadata = pod.get("metadata", {})
    return PodInfo(
        name=metadata["name"],
        labels=dict(metadata.get("labels", {})),
        phase=pod_phase(pod),
        ip=pod.get("status", {}).get("podIP") or "",
        run_id=pod_run_id(pod),
        rank=pod_rank(pod),
    )


def has_joined(pod: Obj) -> bool:
    """Whether the pod's worker has joined the process group: Ready, when its container has a
    readiness probe (the distbench worker's), else running at all (a custom command)."""
    phase = pod_phase(pod)
    if phase == "Succeeded":
        return True
    if phase != "Running":
        return False
    containers = pod.get("spec", {}).get("containers", [])
    if not any("readinessProbe" in c for c in containers):
        return True
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def worker_exit_code(pod: Obj) -> int | None:
    terminated = _worker_state(pod).get("terminated")
    if terminated is None:
        return None
    return int(terminated.get("exitCode", 0))


def pending_reason(pod: Obj) -> str:
    """Why a pod has not started, in the cluster's own words: a waiting container (image pull,
    missing Secret) says more than the scheduling condition, so it comes first."""
    status = pod.get("status", {})
    statuses = [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
    for container in statuses:
        waiting = container.get("state", {}).get("waiting")
        if waiting and waiting.get("reason") and waiting["reason"] not in ROUTINE_WAITING:
            return _reason_text(waiting.get("reason"), waiting.get("message"))
    for condition in status.get("conditions", []):
        if condition.get("status") == "False" and condition.get("reason"):
            return _reason_text(condition["reason"], condition.get("message"))
    if status.get("reason"):
        return _reason_text(status["reason"], status.get("message"))
    return "waiting to be scheduled" if not pod.get("spec", {}).get("nodeName") else "starting"


def failure_reason(pod: Obj) -> str:
    name = pod["metadata"]["name"]
    rank = pod_rank(pod)
    terminated = _worker_state(pod).get("terminated")
    if terminated is not None:
        text = f"worker pod {name} (rank {rank}) {describe_exit(int(terminated['exitCode']))}"
        why = terminated.get("reason")
        # "Error" is every non-zero exit; "OOMKilled" and the like say something.
        if why and why not in ("Error", "Completed"):
            text += f": {_reason_text(why, terminated.get('message'))}"
        return text
    status = pod.get("status", {})
    why = _reason_text(status.get("reason") or "Failed", status.get("message"))
    return f"worker pod {name} (rank {rank}) failed: {why}"


def run_status(
    job: Obj | None,
    pods: Sequence[Obj],
    *,
    num_workers: int,
    log_tail: Callable[[str], str],
) -> RunStatus:
    """The run's state from its Job and pods; ``log_tail`` reads a failed pod's last lines."""
    if job is None:
        return RunStatus(state="gone", reason="its Job does not exist")
    by_rank = _latest_pod_per_rank(pods)
    exit_codes = {pod["metadata"]["name"]: worker_exit_code(pod) for pod in by_rank.values()}
    failed = [pod for pod in by_rank.values() if pod_phase(pod) == "Failed"]
    if failed:
        first = min(failed, key=_finished_at)
        return RunStatus(
            state="failed",
            reason=failure_reason(first),
            exit_codes=exit_codes,
            log_tails={
                pod["metadata"]["name"]: log_tail(pod["metadata"]["name"]) for pod in failed
            },
        )
    job_failed = _condition(job, "Failed")
    if job_failed is not None:
        why = _reason_text(job_failed.get("reason") or "Failed", job_failed.get("message"))
        return RunStatus(
            state="failed",
            reason=f"Job {job['metadata']['name']} failed: {why}",
            exit_codes=exit_codes,
        )
    succeeded = [pod for pod in by_rank.values() if pod_phase(pod) == "Succeeded"]
    if len(succeeded) == num_workers or _condition(job, "Complete") is not None:
        return RunStatus(state="succeeded", exit_codes=exit_codes)
    waiting = [
        f"pod {pod['metadata']['name']} (rank {rank}) is {pod_phase(pod)}: {pending_reason(pod)}"
        if pod_phase(pod) != "Running"
        else f"pod {pod['metadata']['name']} (rank {rank}) runs but has not joined the "
        "process group"
        for rank, pod in sorted(by_rank.items())
        if not has_joined(pod)
    ]
    missing = num_workers - len(by_rank)
    if missing > 0:
        waiting.append(f"{missing} of {num_workers} pods not created yet")
    if waiting:
        return RunStatus(state="starting", reason="; ".join(waiting), exit_codes=exit_codes)
    return RunStatus(state="running", exit_codes=exit_codes)


def counters_from_summary(summary: Obj, namespace: str) -> dict[str, dict[str, float]]:
    """Each pod's counters in a kubelet Summary document (``/stats/summary``), by pod name,
    under the names the local backend uses (cAdvisor's)."""
    result: dict[str, dict[str, float]] = {}
    for pod in summary.get("pods", []):
        ref = pod.get("podRef", {})
        if ref.get("namespace") != namespace or not ref.get("name"):
            continue
        counters: dict[str, float] = {}
        containers = pod.get("containers", [])
        cpu_ns = pod.get("cpu", {}).get("usageCoreNanoSeconds")
        if cpu_ns is None and containers:
            cpu_ns = _sum(c.get("cpu", {}).get("usageCoreNanoSeconds") for c in containers)
        if cpu_ns is not None:
            counters[cadvisor.CPU_SECONDS] = float(cpu_ns) / 1e9
        memory = pod.get("memory", {}).get("workingSetBytes")
        if memory is None and containers:
            memory = _sum(c.get("memory", {}).get("workingSetBytes") for c in containers)
        if memory is not None:
            counters[cadvisor.MEMORY_BYTES] = float(memory)
        network = pod.get("network", {})
        if network.get("txBytes") is not None:
            counters[cadvisor.TRANSMIT_BYTES] = float(network["txBytes"])
        if network.get("rxBytes") is not None:
            counters[cadvisor.RECEIVE_BYTES] = float(network["rxBytes"])
        result[ref["name"]] = counters
    return result


# -- internals -----------------------------------------------------------------------------------
def _worker_state(pod: Obj) -> Mapping[str, Any]:
    for container in pod.get("status", {}).get("containerStatuses", []):
        if container.get("name") == WORKER_CONTAINER:
            state: Mapping[str, Any] = container.get("state", {})
            return state
    return {}


def _latest_pod_per_rank(pods: Sequence[Obj]) -> dict[int, Obj]:
    """One pod per rank: a replacement pod (a node lost, the pod evicted) stands for its rank."""
    latest: dict[int, Obj] = {}
    for pod in pods:
        rank = pod_rank(pod)
        if rank is None:
            continue
        known = latest.get(rank)
        if known is None or _created_at(pod) >= _created_at(known):
            latest[rank] = pod
    return latest


def _created_at(pod: Obj) -> str:
    return str(pod.get("metadata", {}).get("creationTimestamp") or "")


def _finished_at(pod: Obj) -> str:
    finished = _worker_state(pod).get("terminated", {}).get("finishedAt")
    # RFC 3339 timestamps in UTC sort as text; a pod without one sorts last.
    return str(finished or "~")


def _condition(job: Obj, kind: str) -> Mapping[str, Any] | None:
    for condition in job.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            found: Mapping[str, Any] = condition
            return found
    return None


def _reason_text(reason: str | None, message: str | None) -> str:
    return f"{reason}: {message}" if message else str(reason)


def _sum(values: Any) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) if present else None
