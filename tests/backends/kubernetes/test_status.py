"""Reading pods, Jobs and kubelet Summary documents (``backends.kubernetes.status``), on documents
shaped as the API server and kubelet write them: the cases the fake cluster does not produce."""

from __future__ import annotations

from typing import Any

from distbench.backends.kubernetes import status as reading


def pod(name: str, rank: int, phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"run-id": "3", "batch.kubernetes.io/job-completion-index": str(rank)},
            "annotations": {"batch.kubernetes.io/job-completion-index": str(rank)},
            "creationTimestamp": "2026-11-29T10:00:00Z",
        },
        "spec": {"containers": [{"name": "worker", "image": "x"}], "nodeName": "n1"},
        "status": {"phase": phase, **status},
    }


JOB = {"metadata": {"name": "demo-worker-3"}, "status": {}}


def no_log(name: str) -> str:
    return ""


def test_summary_counters_fall_back_to_containers_and_skip_other_namespaces() -> None:
    summary = {
        "node": {"nodeName": "n1"},
        "pods": [
            {
                "podRef": {"name": "a", "namespace": "bench"},
                "containers": [
                    {"name": "worker", "cpu": {"usageCoreNanoSeconds": 1_000_000_000},
                     "memory": {"workingSetBytes": 100}},
                    {"name": "sidecar", "cpu": {"usageCoreNanoSeconds": 500_000_000},
                     "memory": {"workingSetBytes": 20}},
                ],
            },
            {"podRef": {"name": "b", "namespace": "other"}, "cpu": {"usageCoreNanoSeconds": 1}},
        ],
    }  # fmt: skip
    assert reading.counters_from_summary(summary, "bench") == {
        "a": {"container_cpu_usage_seconds_total": 1.5, "container_memory_usage_bytes": 120.0}
    }


def test_a_waiting_container_explains_more_than_the_scheduling_condition() -> None:
    waiting = pod(
        "p",
        0,
        "Pending",
        conditions=[{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
        containerStatuses=[
            {
                "name": "worker",
                "state": {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}},
            }
        ],
    )
    assert reading.pending_reason(waiting) == "ErrImagePull: manifest unknown"
    creating = pod(
        "q",
        0,
        "Pending",
        containerStatuses=[{"state": {"waiting": {"reason": "ContainerCreating"}}}],
    )
    assert reading.pending_reason(creating) == "starting"


def test_an_evicted_pod_fails_the_run_with_the_kubelets_words() -> None:
    evicted = pod("p-0", 0, "Failed", reason="Evicted", message="The node was low on memory.")
    running = pod("p-1", 1, "Running")
    status = reading.run_status(JOB, [evicted, running], num_workers=2, log_tail=no_log)
    assert status.state == "failed"
    assert status.reason == "worker pod p-0 (rank 0) failed: Evicted: The node was low on memory."
    assert status.exit_codes == {"p-0": None, "p-1": None}


def test_the_first_rank_to_fail_is_the_reason() -> None:
    def failed(name: str, rank: int, at: str, code: int) -> dict[str, Any]:
        state = {"terminated": {"exitCode": code, "reason": "Error", "finishedAt": at}}
        return pod(name, rank, "Failed", containerStatuses=[{"name": "worker", "state": state}])

    later = failed("p-0", 0, "2026-11-29T10:00:09Z", 143)
    first = failed("p-1", 1, "2026-11-29T10:00:05Z", 1)
    status = reading.run_status(JOB, [later, first], num_workers=2, log_tail=no_log)
    assert status.reason == "worker pod p-1 (rank 1) exited with code 1"
    assert status.exit_codes == {"p-0": 143, "p-1": 1}


def test_a_replacement_pod_stands_for_its_rank_and_missing_pods_are_waited_for() -> None:
    old = pod("p-0-old", 0, "Failed")
    old["metadata"]["creationTimestamp"] = "2026-11-29T09:00:00Z"
    new = pod("p-0-new", 0, "Running")
    status = reading.run_status(JOB, [old, new], num_workers=2, log_tail=no_log)
    assert status.state == "starting"
    assert status.reason == "1 of 2 pods not created yet"
    assert list(status.exit_codes) == ["p-0-new"]


def test_a_complete_job_has_succeeded_even_after_its_pods_went() -> None:
    complete = {**JOB, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert reading.run_status(complete, [], num_workers=2, log_tail=no_log).state == "succeeded"
    assert reading.run_status(None, [], num_workers=2, log_tail=no_log).state == "gone"


def test_pod_info_has_the_seeds_fields() -> None:
    info = reading.pod_info(pod("p-1", 1, "Running", podIP="10.0.0.7"))
    assert (info.name, info.phase, info.ip, info.rank, info.run_id) == (
        "p-1",
        "Running",
        "10.0.0.7",
        1,
        3,
    )
    assert reading.pod_info(pod("p-2", 2, "Weird")).phase == "Unknown"
    assert reading.pod_info(pod("p-3", 0, "Pending")).ip == ""
