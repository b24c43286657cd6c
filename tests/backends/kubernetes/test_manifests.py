"""Every object the kubernetes backend creates is valid against the Kubernetes OpenAPI schemas
(``kubernetes-validate``, strict: an unknown or misspelt field fails), for a widely deployed
version and the newest one the package ships; and it says what the run asked for."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from typing import Any

import kubernetes_validate
import pytest

from distbench.backends.kubernetes import manifests as manifests
from distbench.store.records import RunRecord

VERSIONS = ["1.32", kubernetes_validate.latest_version()]
TEMPLATE = manifests.WorkerTemplate(
    release="demo",
    namespace="bench",
    image="registry.example/distbench-worker:1",
    server_url="http://distbench.bench.svc:8000",
)


def run_record(**fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "id": 7,
        "name": "test",
        "created_at": dt.datetime.now(dt.UTC),
        "started_at": None,
        "finished_at": None,
        "state": "INITIALIZED",
        "job_id": str(uuid.uuid4()),
        "job_metadata": {},
        "num_workers": 3,
        "num_cpus": 1.5,
        "max_bandwidth": None,
        "benchmark": "digits",
        "backend": "gloo",
        "options": {"target_accuracy": 0.5},
    }
    values.update(fields)
    return RunRecord(**values)


def assert_valid(manifest: dict[str, Any]) -> None:
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(
                f"invalid {manifest['kind']} for Kubernetes {version}: {exc.message} at "
                f"{'.'.join(map(str, exc.path))}\n{json.dumps(manifest, indent=1)}"
            ) from exc


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {v["name"]: v.get("value", v.get("valueFrom")) for v in container["env"]}


RUNS = {
    "default": {},
    "bandwidth": {"max_bandwidth": 2.5},
    "gpu": {"gpu": True, "backend": "nccl", "num_workers": 2},
    "time_limit": {"time_limit_s": 90.5, "num_cpus": 0.25},
}


@pytest.mark.parametrize("kind", sorted(RUNS))
@pytest.mark.parametrize("with_token", [True, False])
def test_every_manifest_is_valid(kind: str, with_token: bool) -> None:
    run = run_record(**RUNS[kind])
    job = manifests.build_job(run, TEMPLATE, with_token=with_token)
    assert_valid(job)
    owner = manifests.owner_reference(job["metadata"]["name"], str(uuid.uuid4()))
    labels = manifests.run_labels("demo", run.id)
    assert_valid(manifests.build_service(job["metadata"]["name"], "bench", labels, owner))
    assert_valid(manifests.build_secret(job["metadata"]["name"], "bench", labels, owner, "tok"))
    tc = manifests.build_job(
        run, dataclasses.replace(TEMPLATE, bandwidth_mode="tc"), with_token=with_token
    )
    assert_valid(tc)


def test_job_is_an_indexed_job_of_one_pod_per_rank() -> None:
    run = run_record(time_limit_s=90.5, num_cpus=1.5)
    job = manifests.build_job(run, TEMPLATE, with_token=True)
    spec = job["spec"]
    assert job["metadata"]["name"] == "demo-worker-7"
    assert job["metadata"]["annotations"][manifests.JOB_ID_ANNOTATION] == run.job_id
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 3
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 91
    assert spec["suspend"] is True  # resumed once its Service and Secret exist
    labels = {"app": "distbench", "component": "worker", "release": "demo", "run-id": "7"}
    assert job["metadata"]["labels"] == spec["template"]["metadata"]["labels"] == labels
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["subdomain"] == "demo-worker-7"
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "distbench.worker"]
    assert container["resources"] == {"requests": {"cpu": "1500m"}, "limits": {"cpu": "1500m"}}
    env = env_of(job)
    assert env["RANK"] == {
        "fieldRef": {
            "apiVersion": "v1",
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']",
        }
    }
    assert env["DISTBENCH_POD_NAME"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["WORLD_SIZE"] == "3"
    assert env["MASTER_ADDR"] == "demo-worker-7-0.demo-worker-7.bench.svc"
    assert env["MASTER_PORT"] == "29500"
    assert env["OMP_NUM_THREADS"] == "2"
    assert env["DISTBENCH_SERVER_URL"] == "http://distbench.bench.svc:8000"
    assert json.loads(env["DISTBENCH_OPTIONS"]) == {"target_accuracy": 0.5}
    assert env["DISTBENCH_TOKEN"] == {
        "secretKeyRef": {"name": "demo-worker-7-token", "key": "token"}
    }
    assert "DISTBENCH_TOKEN" not in env_of(manifests.build_job(run, TEMPLATE, with_token=False))
    # Ready once the worker has joined the process group (it writes <pod>.ready).
    assert env["DISTBENCH_STATUS_DIR"] == "/var/run/distbench"
    assert container["volumeMounts"] == [
        {"name": "distbench-status", "mountPath": "/var/run/distbench"}
    ]
    assert pod["volumes"] == [{"name": "distbench-status", "emptyDir": {"sizeLimit": "1Mi"}}]
    assert container["readinessProbe"]["exec"]["command"] == [
        "sh",
        "-c",
        'test -e "$DISTBENCH_STATUS_DIR/$DISTBENCH_POD_NAME.ready"',
    ]


def test_service_is_headless_and_publishes_pods_before_they_are_ready() -> None:
    owner = manifests.owner_reference("demo-worker-7", "uid-1")
    labels = manifests.run_labels("demo", 7)
    service = manifests.build_service("demo-worker-7", "bench", labels, owner)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == labels
    assert service["metadata"]["ownerReferences"] == [owner]
    assert owner["blockOwnerDeletion"] is True


@pytest.mark.parametrize(
    ("mbit", "quantity"), [(100, "100M"), (2.5, "2500k"), (0.001, "1k"), (1000, "1000M")]
)
def test_bandwidth_annotations_carry_the_cap(mbit: float, quantity: str) -> None:
    job = manifests.build_job(run_record(max_bandwidth=mbit), TEMPLATE, with_token=False)
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "kubernetes.io/egress-bandwidth": quantity,
        "kubernetes.io/ingress-bandwidth": quantity,
    }
    assert "initContainers" not in job["spec"]["template"]["spec"]


def test_tc_mode_shapes_egress_in_an_init_container_with_net_admin() -> None:
    template = dataclasses.replace(TEMPLATE, bandwidth_mode="tc")
    job = manifests.build_job(run_record(max_bandwidth=2.5), template, with_token=False)
    pod = job["spec"]["template"]
    assert pod["metadata"]["annotations"] == {}
    (init,) = pod["spec"]["initContainers"]
    # Root inside the init container: the image's own user would lose NET_ADMIN on exec.
    assert init["securityContext"] == {
        "runAsUser": 0,
        "runAsNonRoot": False,
        "capabilities": {"add": ["NET_ADMIN"]},
    }
    assert "htb rate 2500kbit ceil 2500kbit" in init["command"][-1]
    # Without a cap there is nothing to shape.
    plain = manifests.build_job(run_record(), template, with_token=False)
    assert "initContainers" not in plain["spec"]["template"]["spec"]


def test_gpu_pods_ask_for_one_gpu_each() -> None:
    job = manifests.build_job(run_record(gpu=True, backend="nccl"), TEMPLATE, with_token=False)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert env_of(job)["DISTBENCH_DEVICE"] == "cuda"
    assert env_of(job)["DISTBENCH_DIST_BACKEND"] == "nccl"


def test_mlbench_placeholders_in_a_command_become_each_pods_rank_and_the_peers_names() -> None:
    command = ["python", "main.py", "--run_id", "{run_id}", "--rank", "{rank}", "--hosts"]
    run = run_record(command=[*command, "{hosts}", "--backend", "{backend}", "{other}"])
    job = manifests.build_job(run, TEMPLATE, with_token=False)
    name = job["metadata"]["name"]
    namespace = job["metadata"]["namespace"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    hosts = ",".join(f"{name}-{rank}.{name}.{namespace}.svc" for rank in range(run.num_workers))
    assert hosts.split(",")[0] == env_of(job)["MASTER_ADDR"]
    # One template for every pod: Kubernetes expands $(RANK) from each pod's environment.
    assert container["command"] == [
        *["python", "main.py", "--run_id", str(run.id), "--rank", "$(RANK)", "--hosts", hosts],
        *["--backend", "gloo", "{other}"],
    ]
    assert any(entry["name"] == "RANK" for entry in container["env"])


def test_a_run_with_its_own_command_runs_it_in_its_working_dir() -> None:
    run = run_record(command=["python", "train.py", "--epochs", "2"], working_dir="/work/job")
    job = manifests.build_job(run, TEMPLATE, with_token=False)
    assert_valid(job)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "train.py", "--epochs", "2"]
    assert container["workingDir"] == "/work/job"
    # A custom command writes no ready file: it counts as joined once it runs.
    assert "readinessProbe" not in container
    assert "volumes" not in job["spec"]["template"]["spec"]
