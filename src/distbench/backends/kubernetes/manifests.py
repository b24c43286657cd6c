"""The Kubernetes objects of one run, as plain dicts (the JSON the API server receives).

Pure functions: no client, no cluster. Per run there is an Indexed Job (one pod per rank, rank
from the completion index), a headless Service that gives rank 0 a DNS name for
``MASTER_ADDR``, and, when the server has a token, a Secret holding the run's token. The Job is
created suspended; the Service and Secret are created owned by it (deleting the Job removes
them and its pods), and only then is the Job resumed, so no pod starts before they exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from distbench.backends import placeholders
from distbench.backends.base import run_worker_env, torch_threads
from distbench.store.records import RunRecord
from distbench.worker.env import WorkerVar
from distbench.worker.status import StatusFile, status_file_name

APP_LABELS = {"app": "distbench", "component": "worker"}
WORKER_CONTAINER = "worker"
RENDEZVOUS_PORT = 29500
TOKEN_KEY = "token"  # noqa: S105 -- the key in the Secret, not a secret
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
# Which run (by its UUID) a Job belongs to: run ids restart at 1 in a new database, job ids do not.
JOB_ID_ANNOTATION = "distbench.io/job-id"
EGRESS_ANNOTATION = "kubernetes.io/egress-bandwidth"
INGRESS_ANNOTATION = "kubernetes.io/ingress-bandwidth"
DEFAULT_COMMAND = ["python", "-m", "distbench.worker"]
# The worker writes ``<pod>.ready`` here once it has joined the process group; a readiness
# probe turns that into the pod's Ready condition, so STARTED means joined, as it does locally.
STATUS_VOLUME = "distbench-status"
STATUS_DIR = "/var/run/distbench"
READY_CHECK = (
    f'test -e "${WorkerVar.STATUS_DIR}/'
    f'{status_file_name(f"${WorkerVar.POD_NAME}", StatusFile.READY)}"'
)
READY_PERIOD_S = 2
# Long enough for a worker to flush its last metrics after SIGTERM, short enough for an abort.
TERMINATION_GRACE_S = 10

BandwidthMode = Literal["annotations", "tc"]
Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkerTemplate:
    """What every run's pods share: where they run and how they reach the server."""

    release: str
    namespace: str
    image: str
    server_url: str
    bandwidth_mode: BandwidthMode = "annotations"


def job_name(release: str, run_id: int) -> str:
    return f"{release}-worker-{run_id}"


def secret_name(job: str) -> str:
    return f"{job}-token"


def release_labels(release: str) -> dict[str, str]:
    return {**APP_LABELS, "release": release}


def run_labels(release: str, run_id: int) -> dict[str, str]:
    return {**release_labels(release), "run-id": str(run_id)}


def selector(labels: dict[str, str]) -> str:
    """A label selector matching every one of ``labels``."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def cpu_quantity(num_cpus: float) -> str:
    """Cores as a CPU quantity in millicores (Kubernetes' finest CPU unit)."""
    return f"{round(num_cpus * 1000)}m"


def bandwidth_kbit(mbit: float) -> int:
    return round(mbit * 1000)


def bandwidth_quantity(mbit: float) -> str:
    """Mbit/s as the bandwidth annotations' quantity (bits per second, decimal suffixes)."""
    kbit = bandwidth_kbit(mbit)
    return f"{kbit // 1000}M" if kbit % 1000 == 0 else f"{kbit}k"


def master_addr(job: str, namespace: str) -> str:
    """Rank 0's DNS name: an Indexed Job's pod is host ``<job>-<index>``, and the headless
    Service of the same name as the pods' subdomain gives it a record in the namespace."""
    return f"{job}-0.{job}.{namespace}.svc"


def owner_reference(job: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job,
        "uid": uid,
        "controller": False,
        # Foreground deletion of the Job waits for these to be gone.
        "blockOwnerDeletion": True,
    }


def build_job(run: RunRecord, template: WorkerTemplate, *, with_token: bool) -> Manifest:
    """The run's Indexed Job, created suspended (see the module docstring)."""
    name = job_name(template.release, run.id)
    labels = run_labels(template.release, run.id)
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": run.num_workers,
        "parallelism": run.num_workers,
        # One failed rank fails the run: the others would wait for it in every collective.
        "backoffLimit": 0,
        "suspend": True,
        "template": {
            "metadata": {"labels": labels, "annotations": _bandwidth_annotations(run, template)},
            "spec": _pod_spec(run, template, name, with_token=with_token),
        },
    }
    if run.time_limit_s is not None:
        # The cluster enforces the time limit too, so a run ends even while no server watches.
        spec["activeDeadlineSeconds"] = max(1, math.ceil(run.time_limit_s))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": template.namespace,
            "labels": labels,
            "annotations": {JOB_ID_ANNOTATION: run.job_id},
        },
        "spec": spec,
    }


def build_service(
    job: str, namespace: str, labels: dict[str, str], owner: dict[str, Any]
) -> Manifest:
    """Headless, publishing pods before they are ready: rank 0 must be resolvable while the
    others start, not once it has joined the group it waits for them in."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": job,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": labels,
            "ports": [
                {
                    "name": "rendezvous",
                    "port": RENDEZVOUS_PORT,
                    "targetPort": RENDEZVOUS_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_secret(
    job: str, namespace: str, labels: dict[str, str], owner: dict[str, Any], token: str
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(job),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def resume_patch() -> list[dict[str, Any]]:
    """A JSON Patch that lets the suspended Job create its pods."""
    return [{"op": "replace", "path": "/spec/suspend", "value": False}]


def _pod_spec(
    run: RunRecord, template: WorkerTemplate, job: str, *, with_token: bool
) -> dict[str, Any]:
    cpu = cpu_quantity(run.num_cpus)
    resources: dict[str, dict[str, str]] = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}
    if run.gpu:
        resources["limits"]["nvidia.com/gpu"] = "1"
    container: dict[str, Any] = {
        "name": WORKER_CONTAINER,
        "image": template.image,
        "command": _command(run, job, template.namespace),
        "env": _environment(run, template, job, with_token=with_token),
        "resources": resources,
        "ports": [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT, "protocol": "TCP"}],
    }
    if run.working_dir:
        container["workingDir"] = run.working_dir
    if run.command is None:
        container["volumeMounts"] = [{"name": STATUS_VOLUME, "mountPath": STATUS_DIR}]
        container["readinessProbe"] = {
            "exec": {"command": ["sh", "-c", READY_CHECK]},
            "periodSeconds": READY_PERIOD_S,
            "failureThreshold": 1,
        }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # With the Job controller's hostname <job>-<index>, this makes rank 0's DNS name.
        "subdomain": job,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        # Workers need no Kubernetes API access, and a busy namespace's service variables
        # would only crowd their environment.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
    }
    if run.command is None:
        spec["volumes"] = [{"name": STATUS_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}]
    if run.max_bandwidth is not None and template.bandwidth_mode == "tc":
        spec["initContainers"] = [_tc_container(run.max_bandwidth, template.image)]
    return spec


def _command(run: RunRecord, job: str, namespace: str) -> list[str]:
    """A custom-command run's own argv, its placeholders filled in, else the distbench worker
    (which runs the task). All ranks share one pod template: ``{rank}`` becomes ``$(RANK)``,
    which Kubernetes expands from each pod's environment."""
    if not run.command:
        return list(DEFAULT_COMMAND)
    hosts = [f"{job}-{rank}.{job}.{namespace}.svc" for rank in range(run.num_workers)]
    return placeholders.expand_command(
        run.command, run_id=run.id, rank="$(RANK)", hosts=hosts, backend=run.backend
    )


def _environment(
    run: RunRecord, template: WorkerTemplate, job: str, *, with_token: bool
) -> list[dict[str, Any]]:
    """torchrun's variables and distbench's, as the local backend gives them; RANK and the pod
    name come from the downward API, the token from the run's Secret."""
    # The device plugin exposes the pod's one GPU as device 0, which the run's device names.
    worker = run_worker_env(
        run,
        rank=0,  # (each pod's own comes from the downward API, below)
        # One worker per pod: each is the only (local rank 0) process on its "node".
        local_rank=0,
        master_addr=master_addr(job, template.namespace),
        master_port=RENDEZVOUS_PORT,
        server_url=template.server_url,
        # Only distbench's worker writes the ready file; a custom command is joined once it runs.
        status_dir=Path(STATUS_DIR) if run.command is None else None,
    )
    per_pod: dict[str, dict[str, Any]] = {
        WorkerVar.RANK: _field(f"metadata.annotations['{COMPLETION_INDEX}']"),
        WorkerVar.POD_NAME: _field("metadata.name"),
    }
    if with_token:
        per_pod[WorkerVar.TOKEN] = {"secretKeyRef": {"name": secret_name(job), "key": TOKEN_KEY}}
    plain = {name: value for name, value in worker.to_environ().items() if name not in per_pod}
    plain.update(
        LOCAL_WORLD_SIZE="1",
        OMP_NUM_THREADS=torch_threads(run),
        PYTHONUNBUFFERED="1",
    )
    return [
        *({"name": str(name), "valueFrom": source} for name, source in per_pod.items()),
        *({"name": name, "value": value} for name, value in plain.items()),
    ]


def _field(path: str) -> dict[str, Any]:
    return {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}


def _bandwidth_annotations(run: RunRecord, template: WorkerTemplate) -> dict[str, str]:
    if run.max_bandwidth is None or template.bandwidth_mode != "annotations":
        return {}
    quantity = bandwidth_quantity(run.max_bandwidth)
    return {EGRESS_ANNOTATION: quantity, INGRESS_ANNOTATION: quantity}


def _tc_container(max_bandwidth: float, image: str) -> dict[str, Any]:
    """Shapes the pod's egress with an HTB class before the worker starts (init containers
    share the pod's network namespace, so the qdisc stays). Needs ``tc`` in the image."""
    kbit = bandwidth_kbit(max_bandwidth)
    script = (
        "set -e; "
        "tc qdisc replace dev eth0 root handle 1: htb default 10; "
        f"tc class replace dev eth0 parent 1: classid 1:10 htb rate {kbit}kbit ceil {kbit}kbit"
    )
    return {
        "name": "bandwidth",
        "image": image,
        "command": ["sh", "-c", script],
        # As root: the image runs as an unprivileged user, and a non-root process loses the
        # added capability when it execs ``tc`` (no ambient capabilities), so tc would be refused.
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "capabilities": {"add": ["NET_ADMIN"]},
        },
    }
