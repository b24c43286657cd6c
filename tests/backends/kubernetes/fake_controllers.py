"""The controllers of the FAKE API server (``fake_apiserver``), for tests only: a Job
controller, a scheduler and a garbage collector that do to the stored objects, on each tick,
what the real ones do to a cluster's (see that module's docstring for what is emulated)."""

from __future__ import annotations

import copy
import datetime as dt
import secrets
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.backends.kubernetes.fake_apiserver import FakeApiServer

Obj = dict[str, Any]
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpu_cores(quantity: str | None) -> float:
    if not quantity:
        return 0.0
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


class FakeControllers:
    def __init__(self, server: FakeApiServer) -> None:
        self.server = server
        self._ip_counter = 0
        # When each Job (by uid) was resumed, for its activeDeadlineSeconds.
        self._started: dict[str, float] = {}

    def tick(self) -> None:
        """One round of every controller; the caller holds the server's lock."""
        self._run_jobs()
        self._schedule()
        self.server.kubelet.sync(
            self.server.store["pods"].values(),
            self.server.secret_value,
            self.server.pullable_images,
        )
        self._reap_deleted_pods()
        self._collect_garbage()

    def _run_jobs(self) -> None:
        for job in list(self.server.store["jobs"].values()):
            spec, status = job["spec"], job["status"]
            if spec.get("suspend") or job["metadata"].get("deletionTimestamp"):
                continue
            if "startTime" not in status:
                status["startTime"] = now_text()
                self._started[job["metadata"]["uid"]] = time.monotonic()
                for index in range(int(spec.get("completions", 1))):
                    self._create_job_pod(job, index)
            if any(c["status"] == "True" for c in status.get("conditions", [])):
                continue
            pods = self._owned(job["metadata"]["uid"], "pods")
            phases = [p["status"]["phase"] for p in pods]
            status.update(
                active=phases.count("Pending") + phases.count("Running"),
                succeeded=phases.count("Succeeded"),
                failed=phases.count("Failed"),
            )
            deadline = spec.get("activeDeadlineSeconds")
            if status["failed"] > int(spec.get("backoffLimit", 6)):
                self._fail_job(
                    job, pods, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                )
            elif (
                deadline is not None
                and time.monotonic() - self._started[job["metadata"]["uid"]] > deadline
            ):
                self._fail_job(
                    job, pods, "DeadlineExceeded", "Job was active longer than specified deadline"
                )
            elif status["succeeded"] >= int(spec.get("completions", 1)):
                status["conditions"] = [_condition("Complete", "CompletionsReached", "")]
                status["completionTime"] = now_text()

    def _fail_job(self, job: Obj, pods: list[Obj], reason: str, message: str) -> None:
        job["status"]["conditions"] = [_condition("Failed", reason, message)]
        for pod in pods:
            if pod["status"]["phase"] in ("Pending", "Running"):
                self.server._remove("pods", pod, grace_s=None)

    def _create_job_pod(self, job: Obj, index: int) -> None:
        name = job["metadata"]["name"]
        uid = job["metadata"]["uid"]
        template = copy.deepcopy(job["spec"]["template"])
        metadata = template.get("metadata", {})
        labels = {
            **metadata.get("labels", {}),
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
            COMPLETION_INDEX: str(index),
        }
        annotations = {**metadata.get("annotations", {}), COMPLETION_INDEX: str(index)}
        spec = template["spec"]
        spec["hostname"] = f"{name}-{index}"
        suffix = "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        pod = {
            "metadata": {
                "name": f"{name}-{index}-{suffix}",
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
        }
        self.server._create("pods", job["metadata"]["namespace"], pod)

    def _schedule(self) -> None:
        for pod in self.server.store["pods"].values():
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            cpu, gpus = _requests(pod)
            fitting = [
                node
                for node, capacity in self.server.nodes.items()
                if gpus == 0 and capacity - self._cpu_used(node) >= cpu - 1e-9
            ]
            if fitting:
                node = fitting[0]
                pod["spec"]["nodeName"] = node
                self._ip_counter += 1
                pod["status"]["hostIP"] = f"192.168.0.{list(self.server.nodes).index(node) + 1}"
                pod["status"]["podIP"] = (
                    f"10.244.{list(self.server.nodes).index(node)}.{self._ip_counter}"
                )
                pod["status"]["conditions"] = [_condition("PodScheduled", None, None)]
                continue
            short = "nvidia.com/gpu" if gpus else "cpu"
            count = len(self.server.nodes)
            pod["status"]["conditions"] = [
                _condition(
                    "PodScheduled",
                    "Unschedulable",
                    f"0/{count} nodes are available: {count} Insufficient {short}. preemption: "
                    f"0/{count} nodes are available: {count} No preemption victims found for "
                    "incoming pod.",
                    status="False",
                )
            ]

    def _cpu_used(self, node: str) -> float:
        return sum(
            _requests(pod)[0]
            for pod in self.server.store["pods"].values()
            if pod["spec"].get("nodeName") == node
            and pod["status"].get("phase") in ("Pending", "Running")
        )

    def _reap_deleted_pods(self) -> None:
        for key, pod in list(self.server.store["pods"].items()):
            if pod["metadata"].get("deletionTimestamp") and not self.server.kubelet.is_running(pod):
                self.server.store["pods"].pop(key, None)
                self.server.kubelet.forget(pod)

    def _collect_garbage(self) -> None:
        uids = {
            obj["metadata"]["uid"]: obj
            for objects in self.server.store.values()
            for obj in objects.values()
        }
        for resource, objects in self.server.store.items():
            for obj in list(objects.values()):
                owners = obj["metadata"].get("ownerReferences", [])
                gone = [o for o in owners if o["uid"] not in uids]
                deleting = [
                    o
                    for o in owners
                    if o["uid"] in uids
                    and "foregroundDeletion" in uids[o["uid"]]["metadata"].get("finalizers", [])
                ]
                orphaned = bool(owners) and len(gone) == len(owners)
                if (orphaned or deleting) and not obj["metadata"].get("deletionTimestamp"):
                    self.server._remove(resource, obj, grace_s=None)
        # A Foreground-deleted owner goes once nothing it owns is left.
        for objects in self.server.store.values():
            for key, obj in list(objects.items()):
                finalizers = obj["metadata"].get("finalizers", [])
                if "foregroundDeletion" in finalizers and not self._owned(obj["metadata"]["uid"]):
                    objects.pop(key)

    def _owned(self, uid: str, resource: str | None = None) -> list[Obj]:
        kinds = [resource] if resource else list(self.server.store)
        return [
            obj
            for kind in kinds
            for obj in self.server.store[kind].values()
            if any(o["uid"] == uid for o in obj["metadata"].get("ownerReferences", []))
        ]


def _condition(kind: str, reason: str | None, message: str | None, status: str = "True") -> Obj:
    condition: Obj = {"type": kind, "status": status, "lastTransitionTime": now_text()}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _requests(pod: Obj) -> tuple[float, int]:
    cpu = gpus = 0.0
    for container in pod["spec"]["containers"]:
        resources = container.get("resources", {})
        requests = resources.get("requests", {})
        limits = resources.get("limits", {})
        cpu += cpu_cores(requests.get("cpu") or limits.get("cpu"))
        gpus += float(limits.get("nvidia.com/gpu", 0))
    return cpu, int(gpus)
