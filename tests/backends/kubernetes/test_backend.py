"""``KubernetesBackend`` through the real ``kubernetes`` client against the FAKE API server,
whose kubelet runs nothing here: the tests move pods through their phases themselves."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from distbench.api.pods import labels_text
from distbench.backends import create_backend
from distbench.backends.base import RunStatus
from distbench.backends.kubernetes.backend import KubernetesBackend
from distbench.cli import app
from distbench.errors import BackendUnavailable, InvalidInput, LimitUnsupported
from distbench.settings import Settings
from distbench.store.records import NewRun, RunRecord
from tests.backends.kubernetes.conftest import IMAGE, NAMESPACE, MakeBackend, kubernetes_settings
from tests.backends.kubernetes.fake_apiserver import FakeApiServer
from tests.backends.kubernetes.test_manifests import assert_valid, run_record
from tests.polling import wait_for

SERVER = "http://127.0.0.1:9"


def status_becomes(backend: KubernetesBackend, run: RunRecord, state: str) -> RunStatus:
    return wait_for(
        lambda: (s := backend.status(run)).state == state and s, what=f"the run to be {state}"
    )


def launched(
    backend: KubernetesBackend, token: str | None = "run-token", **fields: Any
) -> RunRecord:
    run = run_record(num_workers=2, num_cpus=1, **fields)
    backend.launch(run, server_url=SERVER, run_token=token)
    return run


def test_launch_creates_a_suspended_job_then_what_it_owns_then_resumes_it(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    assert backend.namespace == NAMESPACE  # the kubeconfig context's
    run = run_record(num_workers=2, num_cpus=1, max_bandwidth=100)
    report = backend.launch(run, server_url=SERVER, run_token="run-token")

    sent = [(method, path.rsplit("/", 1)[-1]) for method, path, _ in cluster.received]
    assert sent == [
        ("POST", "jobs"),
        ("POST", "services"),
        ("POST", "secrets"),
        ("PATCH", "distbench-worker-7"),
    ]
    for method, _, body in cluster.received:
        if method == "POST":
            assert_valid(body)
    (job,) = cluster.objects("jobs", NAMESPACE)
    assert job["spec"]["suspend"] is False
    owner = {"kind": "Job", "name": "distbench-worker-7", "uid": job["metadata"]["uid"]}
    for resource in ("services", "secrets"):
        (owned,) = cluster.objects(resource, NAMESPACE)
        reference = owned["metadata"]["ownerReferences"][0]
        assert {k: reference[k] for k in owner} == owner
    (secret,) = cluster.objects("secrets", NAMESPACE)
    assert secret["metadata"]["name"] == "distbench-worker-7-token"

    # One pod per rank, recorded in the report with their addresses.
    assert sorted(pod.rank for pod in report.pods) == [0, 1]  # type: ignore[type-var]
    assert all(pod.name.startswith(f"distbench-worker-7-{pod.rank}-") for pod in report.pods)
    assert report.applied["bandwidth_limit"] == (
        "pod annotations kubernetes.io/egress-bandwidth=100M and "
        "kubernetes.io/ingress-bandwidth=100M (CNI bandwidth plugin)"
    )
    assert report.applied["cpu_limit"] == "requests=limits cpu 1000m per pod"


def test_pods_are_listed_with_the_seeds_fields(make_backend: MakeBackend) -> None:
    backend = make_backend()
    run = launched(backend)
    pods = wait_for(
        lambda: (p := backend.list_pods()) and all(x.phase == "Running" for x in p) and p,
        what="Running pods",
    )
    assert [pod.rank for pod in pods] == [0, 1]
    assert all(pod.ip.startswith("10.244.") for pod in pods)
    assert all(pod.run_id == run.id for pod in pods)
    # The seed's string form of the pod's own labels (the Job controller adds its own).
    text = labels_text(pods[0].labels)
    assert text.startswith("{'app': 'distbench', ")
    assert "'component': 'worker', 'controller-uid': " in text
    assert "'release': 'distbench', 'run-id': '7'}" in text


def test_a_run_goes_from_running_to_succeeded(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    run = launched(backend)
    status_becomes(backend, run, "running")
    pods = cluster.pods_of_job("distbench-worker-7")
    cluster.finish_pod(pods[0]["metadata"]["name"], 0)
    assert backend.status(run).state == "running"
    cluster.finish_pod(pods[1]["metadata"]["name"], 0)
    done = status_becomes(backend, run, "succeeded")
    assert set(done.exit_codes.values()) == {0}


def test_a_pod_that_runs_but_has_not_joined_keeps_the_run_starting(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    run = launched(backend)
    slow = cluster.pods_of_job("distbench-worker-7")[0]["metadata"]["name"]
    cluster.hold_unready(slow)
    waiting = status_becomes(backend, run, "starting")
    assert waiting.reason == f"pod {slow} (rank 0) runs but has not joined the process group"
    cluster.hold_unready(slow, False)
    status_becomes(backend, run, "running")


def test_a_failed_rank_fails_the_run_with_its_reason_and_last_lines(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    run = launched(backend)
    status_becomes(backend, run, "running")
    failing = cluster.pods_of_job("distbench-worker-7")[1]["metadata"]["name"]
    cluster.set_log(failing, "".join(f"line {i}\n" for i in range(100)))
    cluster.finish_pod(failing, 137, reason="OOMKilled")
    failed = status_becomes(backend, run, "failed")
    assert failed.reason == (
        f"worker pod {failing} (rank 1) exited with code 137 (SIGKILL): OOMKilled"
    )
    assert failed.exit_codes[failing] == 137
    assert failed.log_tails[failing] == "".join(f"line {i}\n" for i in range(70, 100))


def test_an_unschedulable_pod_says_why(make_backend: MakeBackend) -> None:
    backend = make_backend()
    run = run_record(num_workers=2, num_cpus=64)  # the fake nodes have 4 CPUs each
    backend.launch(run, server_url=SERVER, run_token=None)
    waiting = wait_for(
        lambda: "Unschedulable" in (s := backend.status(run)).reason and s, what="the scheduler"
    )
    assert waiting.state == "starting"
    assert (
        "is Pending: Unschedulable: 0/2 nodes are available: 2 Insufficient cpu" in waiting.reason
    )
    assert backend.logs(run, tail_lines=5) == dict.fromkeys(waiting.exit_codes, "")


def test_an_image_that_cannot_be_pulled_says_so(make_backend: MakeBackend) -> None:
    backend = make_backend(worker_image="registry.example/missing:1")
    run = launched(backend)
    waiting = wait_for(
        lambda: "ImagePullBackOff" in (s := backend.status(run)).reason and s, what="the kubelet"
    )
    assert waiting.state == "starting"
    assert 'Back-off pulling image "registry.example/missing:1"' in waiting.reason


def test_the_jobs_deadline_fails_the_run(make_backend: MakeBackend) -> None:
    backend = make_backend()
    run = launched(backend, time_limit_s=0.5)
    failed = status_becomes(backend, run, "failed")
    assert failed.reason == (
        "Job distbench-worker-7 failed: DeadlineExceeded: Job was active longer than "
        "specified deadline"
    )


def test_pod_metrics_come_from_one_summary_per_node(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend(collect_interval_s=10)
    run = run_record(num_workers=4, num_cpus=2)  # two pods fill each 4-CPU fake node
    backend.launch(run, server_url=SERVER, run_token=None)
    pods = backend.list_pods()
    assert len({cluster_pod["spec"]["nodeName"] for cluster_pod in cluster.objects("pods")}) == 2
    for rank, pod in enumerate(pods):
        cluster.set_stats(
            pod.name,
            {
                "cpu": {"usageCoreNanoSeconds": (rank + 1) * 1_500_000_000},
                "memory": {"workingSetBytes": 1000 + rank},
                "network": {"rxBytes": 10 * rank, "txBytes": 20 * rank},
            },
        )
    counters = {pod.name: dict(backend.resource_counters(pod.name)) for pod in pods}
    assert counters[pods[3].name] == {
        "container_cpu_usage_seconds_total": 6.0,
        "container_memory_usage_bytes": 1003.0,
        "container_network_receive_bytes_total": 30.0,
        "container_network_transmit_bytes_total": 60.0,
    }
    assert cluster.summary_requests == {"fake-node-a": 1, "fake-node-b": 1}
    assert backend.resource_counters("no-such-pod") == {}


def test_logs_are_read_from_the_pods_and_kept_after_the_job_is_gone(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    run = launched(backend)
    status_becomes(backend, run, "running")
    names = [pod["metadata"]["name"] for pod in cluster.pods_of_job("distbench-worker-7")]
    for name in names:
        cluster.set_log(name, f"hello from {name}\nbye\n")
    assert backend.logs(run) == {name: f"hello from {name}\nbye\n" for name in names}
    assert backend.logs(run, tail_lines=1) == dict.fromkeys(names, "bye\n")

    backend.stop(run, grace_s=0)
    assert cluster.objects("pods") == []
    assert backend.logs(run, tail_lines=1) == dict.fromkeys(names, "bye\n")


def test_stop_deletes_the_job_and_everything_it_owns(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    run = launched(backend)
    status_becomes(backend, run, "running")
    backend.stop(run, grace_s=1)
    deletes = [(m, p) for m, p in cluster.requests if m == "DELETE"]
    assert ("DELETE", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/distbench-worker-7") in deletes
    # Foreground: the fake orphans the pods of a Job deleted without a policy, as the API does.
    wait_for(
        lambda: not any(cluster.objects(r) for r in ("jobs", "pods", "services", "secrets")),
        what="the Job and what it owns to be gone",
    )
    gone = backend.status(run)
    assert gone.state == "gone"
    backend.stop(run, grace_s=1)  # again: nothing left, no error


def test_reconcile_keeps_active_runs_and_deletes_the_rest_of_its_release(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    active = launched(backend, id=1)
    ended = launched(backend, id=2)
    # Run 3 of another database (same id later, different job id) and another release's Job.
    stale = launched(backend, id=3)
    other_release = make_backend(release="other")
    foreign = launched(other_release, id=4)

    restarted = make_backend()
    restarted.reconcile([active, run_record(id=3, num_workers=2)])
    wait_for(
        lambda: (
            sorted(j["metadata"]["name"] for j in cluster.objects("jobs"))
            == ["distbench-worker-1", "other-worker-4"]
        ),
        what="the left-over Jobs to be deleted",
    )
    assert restarted.status(active).state == "running"
    assert restarted.status(ended).state == "gone"
    assert restarted.status(stale).state == "gone"
    assert other_release.status(foreign).state == "running"


def test_check_refuses_what_the_cluster_cannot_honour(make_backend: MakeBackend) -> None:
    backend = make_backend()

    def new(**fields: Any) -> NewRun:
        values: dict[str, Any] = {
            "name": "x",
            "num_workers": 2,
            "num_cpus": 1.0,
            "max_bandwidth": None,
            "benchmark": "digits",
            "backend": "gloo",
        }
        values.update(fields)
        return NewRun(**values)

    backend.check(new())
    backend.check(new(gpu=True, backend="nccl", max_bandwidth=0.001, num_cpus=0.001))
    refusals = {
        "mpi": (new(backend="mpi"), InvalidInput, "use gloo"),
        "nccl on CPUs": (new(backend="nccl"), InvalidInput, "nccl needs gpu=true"),
        "gpu with mpi": (new(gpu=True, backend="mpi"), InvalidInput, "use nccl"),
        "tiny cpu": (new(num_cpus=0.0001), LimitUnsupported, "smallest CPU quantity, 1m"),
        "tiny cap": (new(max_bandwidth=0.0001), LimitUnsupported, "1 kbit/s"),
        "relative dir": (new(working_dir="src"), InvalidInput, "absolute path"),
    }
    for what, (request, error, words) in refusals.items():
        with pytest.raises(error) as caught:
            backend.check(request)
        assert words in caught.value.message, what
        assert caught.value.status_code == 400, what


def test_a_refusing_api_server_is_a_clear_backend_error(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    cluster.token = "another-token"  # the kubeconfig's token is no longer accepted
    with pytest.raises(BackendUnavailable) as caught:
        backend.launch(run_record(), server_url=SERVER, run_token=None)
    assert caught.value.message.startswith(
        "Kubernetes API error while creating Job distbench-worker-7 in namespace bench: 401"
    )


def test_settings_require_an_image_and_a_reachable_url(
    cluster: FakeApiServer, tmp_path: Any
) -> None:
    chosen = create_backend(kubernetes_settings(cluster, tmp_path))
    try:
        assert isinstance(chosen, KubernetesBackend)
    finally:
        chosen.close()
    with pytest.raises(ValueError, match="DISTBENCH_WORKER_IMAGE"):
        Settings(backend="kubernetes", advertise_url=SERVER)
    with pytest.raises(ValueError, match="DISTBENCH_ADVERTISE_URL"):
        Settings(backend="kubernetes", worker_image=IMAGE)
    with pytest.raises(ValueError, match="k8s_bandwidth"):
        Settings(k8s_bandwidth="netem")  # type: ignore[arg-type]

    result = CliRunner().invoke(
        app, ["serve", "--backend", "kubernetes", "--advertise-url", SERVER]
    )
    assert result.exit_code == 2
    assert "backend=kubernetes needs the workers' container image" in result.output


def test_without_the_kubernetes_client_the_error_says_what_to_install(
    cluster: FakeApiServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    with pytest.raises(BackendUnavailable, match=r"pip install 'distbench\[kubernetes\]'"):
        KubernetesBackend(kubernetes_settings(cluster, tmp_path))


def test_tc_mode_shapes_in_an_init_container_and_gpu_pods_need_gpu_nodes(
    cluster: FakeApiServer, make_backend: MakeBackend
) -> None:
    backend = make_backend(k8s_bandwidth="tc")
    report = backend.launch(
        run_record(max_bandwidth=10, num_workers=2, num_cpus=1), server_url=SERVER, run_token=None
    )
    assert report.applied["bandwidth_limit"] == "tc HTB 10 Mbit/s egress in an init container"
    (sent_job,) = [body for method, path, body in cluster.received if path.endswith("/jobs")]
    assert_valid(sent_job)
    (init,) = sent_job["spec"]["template"]["spec"]["initContainers"]
    assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]

    gpu_run = run_record(id=8, gpu=True, backend="nccl", num_workers=1, num_cpus=1)
    backend.launch(gpu_run, server_url=SERVER, run_token=None)
    waiting = wait_for(
        lambda: "Unschedulable" in (s := backend.status(gpu_run)).reason and s, what="the scheduler"
    )
    assert "Insufficient nvidia.com/gpu" in waiting.reason
