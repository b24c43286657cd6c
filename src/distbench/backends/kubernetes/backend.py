"""The Kubernetes backend: each run an Indexed Job of ``num_workers`` pods in one namespace, with
a headless Service and a Secret (``manifests`` builds them); pods' phases, logs and
resource counters read back through the API server.

The official ``kubernetes`` client is imported when the backend is built, so a laptop install
without the ``kubernetes`` extra never needs it. Every call asks for the raw JSON
(``_preload_content=False``) and works on plain dicts: the same shape the manifests are written
in, and independent of the client's generated model classes, which change between versions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from distbench.backends.base import (
    LOG_TAIL_LINES,
    LaunchReport,
    PodInfo,
    RunStatus,
    dist_backends,
)
from distbench.backends.kubernetes import client as kubernetes_client
from distbench.backends.kubernetes import manifests as manifests
from distbench.backends.kubernetes import status as reading
from distbench.errors import BackendUnavailable, InvalidInput, LimitUnsupported
from distbench.settings import Settings
from distbench.store.records import NewRun, RunRecord

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30.0
# How long ``launch`` waits for the Job controller to create the pods (it takes well under a
# second on a healthy cluster); their names are needed to record the run's pods.
POD_CREATION_WAIT_S = 60.0
# ``stop`` waits this long beyond the grace period for the pods to go, reading exit codes.
STOP_WAIT_EXTRA_S = 10.0


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, settings: Settings) -> None:
        if not settings.worker_image or not settings.advertise_url:
            raise InvalidInput("the kubernetes backend needs worker_image and advertise_url")
        kubernetes = kubernetes_client.import_client()
        self.settings = settings
        self._exceptions = (kubernetes.client.ApiException, *kubernetes_client.transport_errors())
        self._api = kubernetes_client.api_client(kubernetes, settings)
        self.core = kubernetes.client.CoreV1Api(self._api)
        self.batch = kubernetes.client.BatchV1Api(self._api)
        self.namespace = settings.namespace or kubernetes_client.default_namespace(
            kubernetes, settings
        )
        self.template = manifests.WorkerTemplate(
            release=settings.release,
            namespace=self.namespace,
            image=settings.worker_image,
            server_url=settings.advertised_url,
            bandwidth_mode=settings.k8s_bandwidth,
        )
        self.logs_dir = settings.data_dir / "kubernetes-logs"
        # One Summary request per node per collector tick: the collector asks pod by pod.
        self._summary_ttl_s = min(1.0, settings.collect_interval_s / 2)
        self._summaries: dict[str, tuple[float, dict[str, dict[str, float]]]] = {}
        self._pod_nodes: dict[str, str] = {}
        # Exit codes read while the pods of a stopped run went away (they are gone after).
        self._final_exit_codes: dict[str, dict[str, int | None]] = {}
        self._lock = threading.Lock()

    # -- the protocol ------------------------------------------------------------------------
    def check(self, new: NewRun) -> None:
        if new.gpu and new.backend not in dist_backends(gpu=True):
            raise InvalidInput(
                f"backend={new.backend!r} is not available for GPU workers: use nccl (or gloo)",
                details={"errors": [{"field": "backend", "message": "nccl or gloo"}]},
            )
        if not new.gpu and new.backend not in dist_backends(gpu=False):
            raise InvalidInput(
                f"backend={new.backend!r} is not available on CPU worker pods: use gloo "
                "(nccl needs gpu=true)",
                details={"errors": [{"field": "backend", "message": "only gloo without GPUs"}]},
            )
        if round(new.num_cpus * 1000) < 1:
            raise LimitUnsupported(
                f"num_cpus={new.num_cpus:g} is below Kubernetes' smallest CPU quantity, 1m "
                "(0.001 cores)",
                details={"errors": [{"field": "num_cpus", "message": "at least 0.001"}]},
            )
        if new.working_dir is not None and not new.working_dir.startswith("/"):
            raise InvalidInput(
                f"working_dir={new.working_dir!r} must be an absolute path in the worker image",
                details={"errors": [{"field": "working_dir", "message": "an absolute path"}]},
            )
        if new.max_bandwidth is not None and manifests.bandwidth_kbit(new.max_bandwidth) < 1:
            raise LimitUnsupported(
                f"max_bandwidth={new.max_bandwidth:g} Mbit/s is below the smallest rate that "
                "can be set, 1 kbit/s (0.001)",
                details={"errors": [{"field": "max_bandwidth", "message": "at least 0.001"}]},
            )

    def launch(self, run: RunRecord, *, server_url: str, run_token: str | None) -> LaunchReport:
        template = dataclasses.replace(self.template, server_url=server_url)
        job = manifests.build_job(run, template, with_token=run_token is not None)
        name = job["metadata"]["name"]
        labels = manifests.run_labels(self.settings.release, run.id)
        with self._api_errors(f"creating Job {name}"):
            created = self._call(self.batch.create_namespaced_job, self.namespace, job)
        try:
            owner = manifests.owner_reference(name, created["metadata"]["uid"])
            with self._api_errors(f"creating the Service and Secret of Job {name}"):
                service = manifests.build_service(name, self.namespace, labels, owner)
                self._call(self.core.create_namespaced_service, self.namespace, service)
                if run_token is not None:
                    secret = manifests.build_secret(name, self.namespace, labels, owner, run_token)
                    self._call(self.core.create_namespaced_secret, self.namespace, secret)
            with self._api_errors(f"resuming Job {name}"):
                self._call(
                    self.batch.patch_namespaced_job, name, self.namespace, manifests.resume_patch()
                )
            pods = self._wait_for_pods(run)
        except BaseException:
            # Half-created: remove the Job (and with it whatever it owns), keeping the error
            # that stopped the launch rather than one from the clean-up.
            with contextlib.suppress(*self._exceptions):
                self._delete_job(name, grace_s=0)
            raise
        bandwidth = "none"
        if run.max_bandwidth is not None:
            quantity = manifests.bandwidth_quantity(run.max_bandwidth)
            bandwidth = (
                f"tc HTB {run.max_bandwidth:g} Mbit/s egress in an init container"
                if template.bandwidth_mode == "tc"
                else f"pod annotations {manifests.EGRESS_ANNOTATION}={quantity} and "
                f"{manifests.INGRESS_ANNOTATION}={quantity} (CNI bandwidth plugin)"
            )
        applied = {
            "cpu_method": "kubernetes_cpu_limit",
            "cpu_limit": f"requests=limits cpu {manifests.cpu_quantity(run.num_cpus)} per pod",
            "torch_threads": max(1, math.ceil(run.num_cpus)),
            "network": f"pod network; rank 0 at {manifests.master_addr(name, self.namespace)}",
            "bandwidth_limit": bandwidth,
            "kubernetes": {"namespace": self.namespace, "job": name, "image": template.image},
        }
        return LaunchReport(pods=[reading.pod_info(pod) for pod in pods], applied=applied)

    def status(self, run: RunRecord) -> RunStatus:
        name = manifests.job_name(self.settings.release, run.id)
        job = self._read_job(name)
        if job is not None and not self._is_job_of(job, run):
            job = None
        if job is None:
            with self._lock:
                final = self._final_exit_codes.get(run.job_id, {})
            return RunStatus(
                state="gone", reason=f"Job {name} does not exist", exit_codes=dict(final)
            )
        pods = self._run_pods(run.id)
        return reading.run_status(
            job,
            pods,
            num_workers=run.num_workers,
            log_tail=lambda pod: self._pod_log(pod, tail_lines=LOG_TAIL_LINES),
        )

    def list_pods(self) -> list[PodInfo]:
        with self._api_errors("listing worker pods"):
            pods = self._list_pods(manifests.release_labels(self.settings.release))
        # Where each pod runs, for ``resource_counters`` (the collector lists, then samples);
        # replaced whole, so deleted pods are forgotten.
        nodes = {
            pod["metadata"]["name"]: pod["spec"]["nodeName"]
            for pod in pods
            if pod.get("spec", {}).get("nodeName")
        }
        with self._lock:
            self._pod_nodes = nodes
        return sorted((reading.pod_info(pod) for pod in pods), key=lambda pod: pod.name)

    def resource_counters(self, pod_name: str) -> Mapping[str, float]:
        node = self._node_of(pod_name)
        if node is None:
            return {}
        return self._summary(node).get(pod_name, {})

    def logs(self, run: RunRecord, *, tail_lines: int | None = None) -> Mapping[str, str]:
        try:
            pods = self._run_pods(run.id)
        except self._exceptions as exc:
            log.warning("run %s: pods could not be listed for logs: %s", run.id, exc)
            pods = []
        result = self._kept_logs(run, tail_lines)
        for pod in pods:
            name = pod["metadata"]["name"]
            text = self._pod_log(name, tail_lines=tail_lines)
            if text or name not in result:
                result[name] = text
        return result

    def stop(self, run: RunRecord, *, grace_s: float) -> None:
        name = manifests.job_name(self.settings.release, run.id)
        job = self._read_job(name)
        if job is None or not self._is_job_of(job, run):
            return
        pods = self._run_pods(run.id)
        # Deleting the Job deletes its pods, and their logs with them: keep them first.
        self._keep_logs(run, pods)
        self._delete_job(name, grace_s=grace_s)
        # The Job's deletion gives its pods their own termination grace period; this gives
        # them the one the caller asked for (0 after a failed launch). Without it they still
        # go, a little later: a refusal is only worth a warning.
        try:
            self._call(
                self.core.delete_collection_namespaced_pod,
                self.namespace,
                label_selector=manifests.selector(
                    manifests.run_labels(self.settings.release, run.id)
                ),
                grace_period_seconds=max(0, math.ceil(grace_s)),
            )
        except self._exceptions as exc:
            log.warning(
                "run %s: its pods could not be deleted directly (they go with Job %s; the "
                "server's Role needs deletecollection on pods): %s",
                run.id,
                name,
                kubernetes_client.api_message(exc),
            )
        self._wait_until_gone(run, pods, deadline_s=grace_s + STOP_WAIT_EXTRA_S)

    def reconcile(self, active: Sequence[RunRecord]) -> None:
        """Keep the Jobs of ``active`` runs; delete every other Job of this release that an
        earlier server left (its run ended, or belongs to a database no longer used)."""
        wanted = {(str(run.id), run.job_id) for run in active}
        with self._api_errors("listing this release's Jobs"):
            jobs = self._call(
                self.batch.list_namespaced_job,
                self.namespace,
                label_selector=manifests.selector(manifests.release_labels(self.settings.release)),
            )["items"]
        for job in jobs:
            metadata = job["metadata"]
            key = (
                metadata.get("labels", {}).get("run-id"),
                metadata.get("annotations", {}).get(manifests.JOB_ID_ANNOTATION),
            )
            if key in wanted or metadata.get("deletionTimestamp"):
                continue
            log.info("deleting Job %s left by an earlier server", metadata["name"])
            self._delete_job(metadata["name"], grace_s=0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._api.close()

    # -- internals ---------------------------------------------------------------------------
    def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        response = method(
            *args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_S, **kwargs
        )
        document: dict[str, Any] = json.loads(response.data or b"{}")
        return document

    @contextlib.contextmanager
    def _api_errors(self, doing: str) -> Iterator[None]:
        """The cluster's refusal or absence as a ``BackendUnavailable`` naming what failed."""
        try:
            yield
        except self._exceptions as exc:
            status = getattr(exc, "status", None)
            message = kubernetes_client.api_message(exc)
            raise BackendUnavailable(
                f"Kubernetes API error while {doing} in namespace {self.namespace}: "
                + (f"{status} {message}" if status else message)
            ) from exc

    def _is_job_of(self, job: Mapping[str, Any], run: RunRecord) -> bool:
        annotations = job.get("metadata", {}).get("annotations", {})
        return bool(annotations.get(manifests.JOB_ID_ANNOTATION) == run.job_id)

    def _read_job(self, name: str) -> dict[str, Any] | None:
        try:
            return self._call(self.batch.read_namespaced_job, name, self.namespace)
        except self._exceptions as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def _list_pods(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        found = self._call(
            self.core.list_namespaced_pod, self.namespace, label_selector=manifests.selector(labels)
        )
        items: list[dict[str, Any]] = found.get("items", [])
        return items

    def _run_pods(self, run_id: int) -> list[dict[str, Any]]:
        return self._list_pods(manifests.run_labels(self.settings.release, run_id))

    def _wait_for_pods(self, run: RunRecord) -> list[dict[str, Any]]:
        """The run's pods once the Job controller has created one per rank."""
        wait_s = min(
            POD_CREATION_WAIT_S, float(run.start_timeout_s or self.settings.start_timeout_s)
        )
        deadline = time.monotonic() + wait_s
        while True:
            with self._api_errors("listing the run's pods"):
                pods = self._run_pods(run.id)
            ranks = {reading.pod_rank(pod) for pod in pods}
            if ranks >= set(range(run.num_workers)):
                return pods
            if time.monotonic() > deadline:
                job = self._read_job(manifests.job_name(self.settings.release, run.id)) or {}
                conditions = job.get("status", {}).get("conditions", []) or []
                why = "; ".join(
                    f"{c.get('reason')}: {c.get('message')}" for c in conditions if c.get("reason")
                )
                raise BackendUnavailable(
                    f"the Job created {len(pods)} of {run.num_workers} pods within "
                    f"{wait_s:g} s (a ResourceQuota or admission policy may refuse "
                    f"them; see kubectl describe job){': ' + why if why else ''}"
                )
            time.sleep(0.1)

    def _delete_job(self, name: str, *, grace_s: float) -> None:
        """Delete the Job, waiting for nothing. Foreground: the API server removes its pods,
        Service and Secret (owned by it) before the Job itself. Idempotent."""
        try:
            self._call(
                self.batch.delete_namespaced_job,
                name,
                self.namespace,
                propagation_policy="Foreground",
                grace_period_seconds=max(0, math.ceil(grace_s)),
            )
        except self._exceptions as exc:
            if getattr(exc, "status", None) != 404:
                raise

    def _wait_until_gone(
        self, run: RunRecord, pods: Sequence[Mapping[str, Any]], *, deadline_s: float
    ) -> None:
        """Wait for the run's pods to go, noting each one's exit code as it terminates; pods
        that were still running get the grace period the deletion gave them."""
        codes: dict[str, int | None] = {
            pod["metadata"]["name"]: reading.worker_exit_code(pod) for pod in pods
        }
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                left = self._run_pods(run.id)
            except self._exceptions:
                break
            for pod in left:
                code = reading.worker_exit_code(pod)
                if code is not None:
                    codes[pod["metadata"]["name"]] = code
            if not left:
                break
            time.sleep(0.2)
        with self._lock:
            self._final_exit_codes[run.job_id] = codes

    def _pod_log(self, pod_name: str, *, tail_lines: int | None) -> str:
        kwargs: dict[str, Any] = {"container": manifests.WORKER_CONTAINER}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        try:
            response = self.core.read_namespaced_pod_log(
                pod_name,
                self.namespace,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_S,
                **kwargs,
            )
        except self._exceptions as exc:
            # A pod that has not started has no log yet (400), a deleted one none at all (404).
            log.debug("no log for pod %s: %s", pod_name, exc)
            return ""
        data: bytes = response.data or b""
        return data.decode(errors="replace")

    def _keep_logs(self, run: RunRecord, pods: Sequence[Mapping[str, Any]]) -> None:
        directory = self.logs_dir / run.job_id
        directory.mkdir(parents=True, exist_ok=True)
        for pod in pods:
            name = pod["metadata"]["name"]
            text = self._pod_log(name, tail_lines=None)
            if text:
                (directory / f"{name}.log").write_text(text)

    def _kept_logs(self, run: RunRecord, tail_lines: int | None) -> dict[str, str]:
        directory = self.logs_dir / run.job_id
        if not directory.is_dir():
            return {}
        kept = {}
        for path in sorted(directory.glob("*.log")):
            text = path.read_text(errors="replace")
            if tail_lines is not None:
                lines = text.splitlines(keepends=True)
                text = "".join(lines[-tail_lines:]) if tail_lines > 0 else ""
            kept[path.stem] = text
        return kept

    def _node_of(self, pod_name: str) -> str | None:
        with self._lock:
            node = self._pod_nodes.get(pod_name)
        if node is not None:
            return node
        try:
            pod = self._call(self.core.read_namespaced_pod, pod_name, self.namespace)
        except self._exceptions:
            return None
        node = pod.get("spec", {}).get("nodeName")
        if node:
            with self._lock:
                self._pod_nodes[pod_name] = node
        return node or None

    def _summary(self, node: str) -> dict[str, dict[str, float]]:
        """The node's kubelet Summary (through the API server's node proxy), read at most once
        per ``_summary_ttl_s``: the collector asks for each pod in turn."""
        now = time.monotonic()
        with self._lock:
            cached = self._summaries.get(node)
            if cached is not None and now - cached[0] < self._summary_ttl_s:
                return cached[1]
        try:
            document = self._call(self.core.connect_get_node_proxy_with_path, node, "stats/summary")
        except self._exceptions as exc:
            log.warning("kubelet summary of node %s unavailable: %s", node, exc)
            # Remembered like a good answer: the node's other pods do not ask again this tick.
            document = {}
        counters = reading.counters_from_summary(document, self.namespace)
        with self._lock:
            self._summaries[node] = (now, counters)
        return counters
