"""Real runs through the HTTP API with ``--backend kubernetes``: the server's KubernetesBackend
talks to the FAKE API server with the real client, and the fake kubelet runs each pod's worker
container as a local process (see ``fake_kubelet``), so digits really trains on two worker pods.

The same API-level checks as the local backend's runs (tests/backends/test_local.py,
tests/orchestrator/test_lifecycle.py), with the helpers they share; what differs is what is
checked on the "cluster": Jobs, pods, Services and Secrets instead of processes and cgroups.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from distbench.backends.kubernetes.backend import KubernetesBackend
from distbench.cadvisor import RESOURCE_METRICS
from tests.backends.kubernetes.conftest import IMAGE, NAMESPACE, kubernetes_settings
from tests.backends.kubernetes.fake_apiserver import FakeApiServer
from tests.backends.kubernetes.test_manifests import assert_valid
from tests.backends.local_helpers import (
    ENDLESS,
    QUICK,
    abort_active_runs,
    dump,
    get_run,
    pod_series,
    post_run,
    run_metric_names,
    started_run,
    wait_for,
    wait_for_state,
)
from tests.conftest import ServerThread, free_port

# Real runs cost seconds each: one database kind is enough here.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TOKEN = "server-token-for-kubernetes"
# What the Summary API gives (no per-pod network on the fake kubelet's loopback).
CPU_AND_MEMORY = {"container_cpu_usage_seconds_total", "container_memory_usage_bytes"}
assert set(RESOURCE_METRICS) >= CPU_AND_MEMORY


@dataclass
class ClusterServer:
    url: str
    backend: KubernetesBackend | None = None
    thread: ServerThread | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.__exit__(None, None, None)
            self.thread = None


@dataclass
class ClusterServers:
    """Servers on the kubernetes backend sharing one database and one fake cluster."""

    cluster: FakeApiServer
    database_url: str
    tmp_path: Path
    started: list[ClusterServer] = field(default_factory=list)

    def start(self, *, port: int | None = None, **overrides: Any) -> ClusterServer:
        port = port or free_port()
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "database_url": self.database_url,
            "advertise_url": f"http://127.0.0.1:{port}",
            "token": TOKEN,
            "start_timeout_s": 60,
        }
        values.update(overrides)
        settings = kubernetes_settings(self.cluster, self.tmp_path, **values)
        backend = KubernetesBackend(settings)
        thread = ServerThread(settings, backend)
        server = ClusterServer(url=f"http://127.0.0.1:{port}", backend=backend, thread=thread)
        self.started.append(server)
        thread.__enter__()
        return server

    def close(self) -> None:
        for server in reversed(self.started):
            if server.thread is None:
                continue
            with server.client() as http:
                abort_active_runs(http)
            break
        for server in self.started:
            server.stop()


@pytest.fixture
def servers(migrated_database_url: str, tmp_path: Path) -> Iterator[ClusterServers]:
    with FakeApiServer(
        workdir=tmp_path / "kubelet", pullable_images={IMAGE}, run_processes=True
    ) as cluster:
        group = ClusterServers(cluster, migrated_database_url, tmp_path)
        try:
            yield group
        finally:
            group.close()
        # Every object the server created in the cluster was valid for Kubernetes.
        for method, _, body in cluster.received:
            if method == "POST":
                assert_valid(body)


def pods_of(http: httpx.Client, run_id: int) -> list[dict[str, Any]]:
    prefix = f"distbench-worker-{run_id}-"
    pods = [pod for pod in http.get("/api/pods/").json() if pod["name"].startswith(prefix)]
    return sorted(pods, key=lambda pod: str(pod["name"]))


def worker_pids(cluster: FakeApiServer) -> dict[str, int]:
    with cluster.lock:
        return {name: c.popen.pid for name, c in cluster.kubelet.containers.items()}


def assert_cluster_cleaned_up(cluster: FakeApiServer) -> None:
    """Nothing of the run is left: no Job, pod, Service or Secret, no worker process."""
    wait_for(
        lambda: not any(cluster.objects(r) for r in ("jobs", "pods", "services", "secrets")),
        what="the run's Job, pods, Service and Secret to be deleted",
        timeout_s=20,
    )
    with cluster.lock:
        running = [n for n, c in cluster.kubelet.containers.items() if c.popen.poll() is None]
    assert running == []


def test_default_run_trains_to_finished_on_worker_pods(servers: ClusterServers) -> None:
    server = servers.start()
    with server.client() as http:
        run = post_run(http, options=QUICK)  # digits on 2 workers
        run_id = run["id"]

        def running() -> list[dict[str, Any]] | None:
            pods = pods_of(http, run_id)
            return pods if len(pods) == 2 and all(p["phase"] == "Running" for p in pods) else None

        pods = wait_for(running, what="both worker pods to be Running", timeout_s=60)
        names = [pod["name"] for pod in pods]
        assert [name.rsplit("-", 2)[0] for name in names] == [f"distbench-worker-{run_id}"] * 2
        for pod in pods:
            assert pod["ip"].startswith("10.244."), pod
            assert pod["labels"].startswith("{'app': 'distbench', 'batch.kubernetes.io/")
            assert f"'release': 'distbench', 'run-id': '{run_id}'}}" in pod["labels"]
        # The Job's objects: the token reaches the pods only through the run's Secret.
        (secret,) = servers.cluster.objects("secrets", NAMESPACE)
        assert secret["metadata"]["name"] == f"distbench-worker-{run_id}-token"

        recorded = wait_for_state(http, run_id, "STARTED", "FINISHED")["job_metadata"]["pods"]
        assert sorted(recorded) == names
        wait_for(
            lambda: all(set(pod_series(http, name)) >= CPU_AND_MEMORY for name in names),
            what="pod metrics of both workers from the Summary API",
            timeout_s=60,
        )
        finished = wait_for_state(http, run_id, "FINISHED", timeout_s=180)
        metadata = finished["job_metadata"]
        assert sorted(metadata["pods"]) == names
        assert metadata["exit_codes"] == dict.fromkeys(names, 0), dump(metadata)
        assert metadata["limits"]["cpu_method"] == "kubernetes_cpu_limit"

        # Rank 0's training metrics arrived, posted with the run token from the Secret.
        series = run_metric_names(http, run_id)
        assert {"val_accuracy", "time_to_accuracy_s", "train_loss"} <= set(series)
        assert float(series["val_accuracy"][-1]["value"]) >= QUICK["target_accuracy"]

        # The pods are gone with their Job; their resource history and logs are kept.
        wait_for(lambda: pods_of(http, run_id) == [], what="the pods to be deleted")
        for name in names:
            cpu = [
                float(p["value"])
                for p in pod_series(http, name)["container_cpu_usage_seconds_total"]
            ]
            assert cpu == sorted(cpu)
            assert cpu[-1] > 0
        logs = http.get(f"/api/runs/{run_id}/logs").json()["logs"]
        rank0 = next(name for name in names if name.startswith(f"distbench-worker-{run_id}-0-"))
        rank1 = next(name for name in names if name.startswith(f"distbench-worker-{run_id}-1-"))
        assert "rank 0/2 joining gloo" in logs[rank0]
        assert "rank 1 done" in logs[rank1]
    assert_cluster_cleaned_up(servers.cluster)


def test_abort_deletes_the_worker_pods_and_keeps_the_data(servers: ClusterServers) -> None:
    server = servers.start()
    with server.client() as http:
        run = started_run(http, options=ENDLESS)
        run_id = run["id"]
        wait_for(
            lambda: "val_accuracy" in run_metric_names(http, run_id),
            what="the first epoch's metrics",
            timeout_s=60,
        )
        (pod_name, _) = sorted(get_run(http, run_id)["job_metadata"]["pods"])
        wait_for(lambda: pod_series(http, pod_name), what="a pod metric sample")

        response = http.delete(f"/api/runs/{run_id}/")
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "ABORTED"
        assert_cluster_cleaned_up(servers.cluster)

        assert "val_accuracy" in run_metric_names(http, run_id)
        assert "container_cpu_usage_seconds_total" in pod_series(http, pod_name)
        assert "joining gloo" in http.get(f"/api/runs/{run_id}/logs").json()["logs"][pod_name]
        assert http.delete(f"/api/runs/{run_id}/").json()["state"] == "ABORTED"


def test_a_killed_worker_fails_the_run(servers: ClusterServers) -> None:
    server = servers.start()
    with server.client() as http:
        run = started_run(http, options=ENDLESS)
        run_id = run["id"]
        pids = worker_pids(servers.cluster)
        killed = next(name for name in pids if name.startswith(f"distbench-worker-{run_id}-1-"))
        os.kill(pids[killed], signal.SIGKILL)

        failed = wait_for_state(http, run_id, "FAILED", timeout_s=20)
        metadata = failed["job_metadata"]
        assert metadata["error"] == (
            f"worker pod {killed} (rank 1) exited with code 137 (SIGKILL)"
        ), dump(metadata)
        assert metadata["exit_codes"][killed] == 137
        assert "rank 1/2 joining gloo process group" in metadata["worker_log_tails"][killed]
    assert_cluster_cleaned_up(servers.cluster)


def test_a_custom_command_runs_on_every_pod_in_its_working_dir(
    servers: ClusterServers, tmp_path: Path
) -> None:
    server = servers.start(allow_commands=True)
    script = (
        "import os; print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], os.getcwd())"
    )
    with server.client() as http:
        run = post_run(http, command=["python", "-c", script], working_dir=str(tmp_path))
        (job,) = wait_for(
            lambda: [b for m, path, b in servers.cluster.received if path.endswith("/jobs")],
            what="the run's Job",
        )
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-c", script]
        assert container["workingDir"] == str(tmp_path)
        finished = wait_for_state(http, run["id"], "FINISHED", timeout_s=60)
        assert set(finished["job_metadata"]["exit_codes"].values()) == {0}
        logs = http.get(f"/api/runs/{run['id']}/logs").json()["logs"]
        assert sorted(logs.values()) == [f"rank 0 of 2 {tmp_path}\n", f"rank 1 of 2 {tmp_path}\n"]
    assert_cluster_cleaned_up(servers.cluster)


def test_unschedulable_pods_fail_the_run_at_the_start_timeout(servers: ClusterServers) -> None:
    server = servers.start(start_timeout_s=2)
    with server.client() as http:
        run = post_run(http, options=QUICK, num_cpus=64)  # the fake nodes have 4 CPUs each
        failed = wait_for_state(http, run["id"], "FAILED", timeout_s=20)
        error = failed["job_metadata"]["error"]
        assert "workers did not all start within start_timeout_s=2" in error, error
        assert "is Pending: Unschedulable: 0/2 nodes are available: 2 Insufficient cpu" in error
    assert_cluster_cleaned_up(servers.cluster)


def test_a_restarted_server_adopts_the_run_and_deletes_left_over_jobs(
    servers: ClusterServers,
) -> None:
    first = servers.start()
    with first.client() as http:
        run = started_run(http, options=ENDLESS)
        run_id = run["id"]
        series = wait_for(
            lambda: (s := run_metric_names(http, run_id)) and "val_accuracy" in s and s,
            what="the first epoch's metrics",
            timeout_s=60,
        )
        last_seen = series["val_accuracy"][-1]["date"]
    first.stop()
    # A Job of this release whose run is not active (an earlier server's, say): removed.
    labels = {"app": "distbench", "component": "worker", "release": "distbench", "run-id": "999"}
    container = {"name": "worker", "image": IMAGE}
    servers.cluster.create(
        "jobs",
        NAMESPACE,
        {
            "metadata": {"name": "distbench-worker-999", "labels": labels},
            "spec": {"suspend": True, "template": {"spec": {"containers": [container]}}},
        },
    )
    pids = worker_pids(servers.cluster)

    second = servers.start(port=int(first.url.rsplit(":", 1)[1]))
    with second.client() as http:
        assert get_run(http, run_id)["state"] == "STARTED"
        assert [job["metadata"]["name"] for job in servers.cluster.objects("jobs")] == [
            f"distbench-worker-{run_id}"
        ]
        assert {pod["phase"] for pod in pods_of(http, run_id)} == {"Running"}
        assert worker_pids(servers.cluster) == pids  # the same worker processes
        wait_for(
            lambda: run_metric_names(http, run_id, since=last_seen).get("val_accuracy"),
            what="metrics posted to the new server by the adopted workers",
            timeout_s=60,
        )
        assert http.delete(f"/api/runs/{run_id}/").json()["state"] == "ABORTED"
    assert_cluster_cleaned_up(servers.cluster)


def test_distbench_serve_with_the_kubernetes_backend(servers: ClusterServers) -> None:
    """The command a user runs, configured by its options: pods listed, a run aborted."""
    port = free_port()
    kubeconfig = servers.cluster.write_kubeconfig(
        servers.tmp_path / "cli-kubeconfig", namespace="default"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTBENCH_")}
    env.update(DISTBENCH_TOKEN=TOKEN, DISTBENCH_DATA_DIR=str(servers.tmp_path / "cli-data"))
    command = [
        str(Path(sys.executable).parent / "distbench"),
        "serve",
        "--port", str(port),
        "--database-url", servers.database_url,
        "--backend", "kubernetes",
        "--kubeconfig", str(kubeconfig),
        "--namespace", NAMESPACE,
        "--worker-image", IMAGE,
        "--advertise-url", f"http://127.0.0.1:{port}",
        "--log-level", "warning",
    ]  # fmt: skip
    log_path = servers.tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = ClusterServer(url=f"http://127.0.0.1:{port}")
    try:

        def answering() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{server.url}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answering, what="distbench serve to answer", timeout_s=60)
        with server.client() as http:
            assert http.get("/api/pods/").json() == []
            run = post_run(http, options=QUICK, num_cpus=64)  # stays Pending: never scheduled
            pods = wait_for(lambda: pods_of(http, run["id"]), what="the run's pods")
            assert [pod["phase"] for pod in pods] == ["Pending", "Pending"]
            assert [pod["ip"] for pod in pods] == ["", ""]
            assert http.delete(f"/api/runs/{run['id']}/").json()["state"] == "ABORTED"
        assert_cluster_cleaned_up(servers.cluster)
    finally:
        process.terminate()
        process.wait(timeout=30)
