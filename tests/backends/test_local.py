"""The local backend with real worker processes training together over gloo at world size 2, as
root with their network namespaces, tc and cgroup CPU quotas, through a real server."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from distbench.backends.local.limits import cpu, network
from distbench.cadvisor import RESOURCE_METRICS
from tests.backends.local_helpers import (
    ENDLESS,
    IS_ROOT,
    QUICK,
    LocalServers,
    assert_cleaned_up,
    dump,
    get_run,
    is_running,
    kill_worker,
    pod_series,
    post_run,
    requires_root,
    run_metric_names,
    started_run,
    wait_for,
    wait_for_state,
    worker_pids,
)

# Where the database does not matter, one kind is enough (real runs cost seconds each).
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NETWORK_COUNTERS = {
    "container_network_transmit_bytes_total",
    "container_network_receive_bytes_total",
}
CPU_AND_MEMORY = set(RESOURCE_METRICS) - NETWORK_COUNTERS


def seconds_between(first: dict[str, Any], last: dict[str, Any]) -> float:
    parse = dt.datetime.fromisoformat
    return (parse(last["date"]) - parse(first["date"])).total_seconds()


def pods_of(http: httpx.Client, run_id: int) -> list[dict[str, Any]]:
    prefix = f"distbench-worker-{run_id}-"
    pods = [pod for pod in http.get("/api/pods/").json() if pod["name"].startswith(prefix)]
    return sorted(pods, key=lambda pod: str(pod["name"]))


def test_default_run_trains_to_finished(local_servers: LocalServers) -> None:
    server = local_servers.start()
    with server.client() as http:
        run = post_run(http)  # the default request: digits on 2 workers
        run_id = run["id"]
        assert run["state"] == "INITIALIZED"
        assert run["benchmark"] == "digits"
        names = [f"distbench-worker-{run_id}-0", f"distbench-worker-{run_id}-1"]

        # While it runs, both workers are pods with the seed's labels and their own addresses.
        def running() -> list[dict[str, Any]] | None:
            pods = pods_of(http, run_id)
            return pods if pods and all(p["phase"] == "Running" for p in pods) else None

        pods = wait_for(running, what="both workers to be Running")
        assert [pod["name"] for pod in pods] == names
        for pod in pods:
            assert pod["labels"] == (
                "{'app': 'distbench', 'component': 'worker', 'release': 'distbench', "
                f"'run-id': '{run_id}'}}"
            )
        addresses = [pod["ip"] for pod in pods]
        if IS_ROOT:
            assert len(set(addresses)) == 2, addresses
            assert all(ipaddress.ip_address(a) in network.BENCHMARK_RANGE for a in addresses)
        else:
            assert addresses == ["127.0.0.1", "127.0.0.1"]
        assert wait_for_state(http, run_id, "STARTED", "FINISHED")["job_metadata"]["pods"] == names

        # The collector samples each running worker under cAdvisor's names.
        expected = set(RESOURCE_METRICS) if IS_ROOT else CPU_AND_MEMORY
        wait_for(
            lambda: all(expected <= set(pod_series(http, name)) for name in names),
            what=f"pod metrics {sorted(expected)} of both workers",
        )

        finished = wait_for_state(http, run_id, "FINISHED", timeout_s=120)
        metadata = finished["job_metadata"]
        assert metadata["exit_codes"] == dict.fromkeys(names, 0), dump(metadata)
        assert metadata["limits"]["cpu_method"] in {
            "cgroup_v2_cpu_max",
            "cgroup_v1_cfs_quota",
            "cpu_affinity",
        }
        assert finished["finished_at"] is not None

        # Rank 0's training metrics arrived, and the run reached its target.
        series = run_metric_names(http, run_id)
        assert {"val_accuracy", "time_to_accuracy_s", "train_loss", "epoch"} <= set(series)
        target = finished["options"]["target_accuracy"]
        assert float(series["val_accuracy"][-1]["value"]) >= target
        assert len(series["time_to_accuracy_s"]) == 1
        assert float(series["time_to_accuracy_s"][0]["value"]) > 0

        # The pods are gone, but their resource history is still served, counters counting up.
        assert all(pod["phase"] != "Running" for pod in pods_of(http, run_id))
        for name in names:
            pod = pod_series(http, name)
            assert expected <= set(pod), sorted(pod)
            cpu_values = [float(p["value"]) for p in pod["container_cpu_usage_seconds_total"]]
            assert cpu_values == sorted(cpu_values)
            assert cpu_values[-1] > 0
            if IS_ROOT:
                sent = pod["container_network_transmit_bytes_total"]
                assert float(sent[-1]["value"]) > 0, "all-reduce traffic left no trace"

        logs = http.get(f"/api/runs/{run_id}/logs").json()["logs"]
        assert "rank 0/2 joining gloo" in logs[names[0]]
        assert "rank 1 done" in logs[names[1]]
    assert_cleaned_up(local_servers.data_dir, run["job_id"])


def test_killed_worker_fails_the_run_and_stops_the_other(local_servers: LocalServers) -> None:
    server = local_servers.start()
    with server.client() as http:
        run = started_run(http, options=ENDLESS)
        run_id = run["id"]
        pids = worker_pids(local_servers.data_dir, run["job_id"])
        killed = f"distbench-worker-{run_id}-1"
        kill_worker(pids[1])

        failed = wait_for_state(http, run_id, "FAILED", timeout_s=10)
        metadata = failed["job_metadata"]
        assert killed in metadata["error"], dump(metadata)
        assert "SIGKILL" in metadata["error"], dump(metadata)
        assert metadata["exit_codes"][killed] == -9, dump(metadata)
        survivor = f"distbench-worker-{run_id}-0"
        assert metadata["exit_codes"][survivor] is not None, dump(metadata)
        assert not is_running(pids[0])
        # The failed worker's last output is kept with the run.
        assert "rank 1/2 joining gloo process group" in metadata["worker_log_tails"][killed]
    assert_cleaned_up(local_servers.data_dir, run["job_id"])


def test_abort_stops_workers_and_keeps_data(local_servers: LocalServers) -> None:
    server = local_servers.start()
    with server.client() as http:
        run = started_run(http, options=ENDLESS)
        run_id = run["id"]
        pids = worker_pids(local_servers.data_dir, run["job_id"])
        wait_for(
            lambda: "val_accuracy" in run_metric_names(http, run_id),
            what="the first epoch's metrics",
        )
        pod_name = f"distbench-worker-{run_id}-0"
        wait_for(lambda: pod_series(http, pod_name), what="a pod metric sample")

        response = http.delete(f"/api/runs/{run_id}/")
        assert response.status_code == 200, response.text
        aborted = response.json()
        assert aborted["state"] == "ABORTED"
        assert aborted["job_metadata"]["reason"] == "aborted by request"
        assert not any(is_running(pid) for pid in pids.values())
        assert_cleaned_up(local_servers.data_dir, run["job_id"])

        # Its data stays: run metrics, pod metrics, logs; aborting again changes nothing.
        assert "val_accuracy" in run_metric_names(http, run_id)
        assert "container_cpu_usage_seconds_total" in pod_series(http, pod_name)
        assert "joining gloo" in http.get(f"/api/runs/{run_id}/logs").json()["logs"][pod_name]
        again = http.delete(f"/api/runs/{run_id}/")
        assert again.status_code == 200
        assert again.json()["state"] == "ABORTED"
        assert get_run(http, run_id)["state"] == "ABORTED"


def test_concurrent_starts_admit_exactly_one_run(local_servers: LocalServers) -> None:
    server = local_servers.start()
    gate = threading.Barrier(20)
    statuses: list[int] = []
    lock = threading.Lock()

    def post() -> None:
        with server.client() as http:
            gate.wait()
            response = http.post(
                "/api/runs/", json={"name": "racer", "num_workers": 2, "options": ENDLESS}
            )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] + [409] * 19

    with server.client() as http:
        runs = http.get("/api/runs/").json()
        assert len(runs) == 1
        run = wait_for_state(http, runs[0]["id"], "STARTED")
        conflict = http.post("/api/runs/", json={"name": "second", "num_workers": 1})
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"]["code"] == "run_active"
        assert http.delete(f"/api/runs/{run['id']}/").json()["state"] == "ABORTED"
    assert_cleaned_up(local_servers.data_dir, run["job_id"])


@sqlite_only
def test_missing_worker_python_fails_the_run(local_servers: LocalServers) -> None:
    server = local_servers.start(worker_python="/nonexistent/bin/python")
    with server.client() as http:
        run = post_run(http, options=QUICK)
        failed = wait_for_state(http, run["id"], "FAILED", timeout_s=15)
        error = failed["job_metadata"]["error"]
        assert error.startswith("workers could not be created"), error
        assert "/nonexistent/bin/python" in error
    assert_cleaned_up(local_servers.data_dir, run["job_id"])


@sqlite_only
def test_workers_that_never_join_fail_at_the_start_timeout(
    local_servers: LocalServers, tmp_path: Path
) -> None:
    sleeper = tmp_path / "never-joins"
    sleeper.write_text("#!/bin/sh\nsleep 600\n")
    sleeper.chmod(0o755)
    # Cold starts: the warm launcher would run the script too, and never become ready.
    server = local_servers.start(worker_python=str(sleeper), start_timeout_s=3, warm_launcher=False)
    with server.client() as http:
        run = post_run(http, options=QUICK)
        pids = wait_for(
            lambda: len(p := worker_pids(local_servers.data_dir, run["job_id"])) == 2 and p,
            what="both workers to be created",
        )
        assert get_run(http, run["id"])["state"] == "INITIALIZED"
        failed = wait_for_state(http, run["id"], "FAILED", timeout_s=15)
        error = failed["job_metadata"]["error"]
        assert "start_timeout_s=3" in error, error
        assert "ranks 0, 1 have not joined" in error, error
    assert not any(is_running(pid) for pid in pids.values())
    # The scripts' own children (the sleeps) were in the workers' process groups: gone too.
    stragglers = [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if str(sleeper) in " ".join(proc.info["cmdline"] or [])
        and proc.status() != psutil.STATUS_ZOMBIE
    ]
    assert stragglers == []
    assert_cleaned_up(local_servers.data_dir, run["job_id"])


@requires_root
@sqlite_only
def test_half_a_cpu_holds_a_busy_worker_to_half_a_core(local_servers: LocalServers) -> None:
    server = local_servers.start()
    with server.client() as http:
        run = started_run(http, num_cpus=0.5, options=ENDLESS)
        run_id = run["id"]
        limits = get_run(http, run_id)["job_metadata"]["limits"]
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        expected = (
            "cgroup_v2_cpu_max"
            if v2.exists() and "cpu" in v2.read_text().split()
            else "cgroup_v1_cfs_quota"
        )
        assert limits["cpu_method"] == expected, limits

        pod_name = f"distbench-worker-{run_id}-0"

        def usage_window() -> list[dict[str, Any]] | None:
            points = pod_series(http, pod_name).get("container_cpu_usage_seconds_total", [])
            if len(points) < 2:
                return None
            return points if seconds_between(points[0], points[-1]) >= 4 else None

        points = wait_for(usage_window, what="4 s of CPU samples", timeout_s=30)
        span_s = seconds_between(points[0], points[-1])
        used_s = float(points[-1]["value"]) - float(points[0]["value"])
        cores = used_s / span_s
        assert cores <= 0.6, f"{cores:.2f} cores used with num_cpus=0.5"
        assert cores > 0.05, f"the worker was not busy ({cores:.2f} cores): nothing was measured"
        assert http.delete(f"/api/runs/{run_id}/").json()["state"] == "ABORTED"
    assert_cleaned_up(local_servers.data_dir, run["job_id"])


@sqlite_only
def test_without_root_limits_it_cannot_enforce_are_refused_and_runs_still_run(
    local_servers: LocalServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a server that is not root sees: no namespaces, no cgroups it may write.
    reason = "the server is not running as root (CAP_NET_ADMIN is needed)"
    monkeypatch.setattr(network, "namespaces_available", lambda: reason)
    monkeypatch.setattr(cpu, "detect_method", lambda root=None: ("cpu_affinity", None))
    server = local_servers.start()
    with server.client() as http:
        capped = http.post(
            "/api/runs/", json={"name": "capped", "num_workers": 2, "max_bandwidth": 100}
        )
        assert capped.status_code == 400, capped.text
        error = capped.json()["error"]
        assert error["code"] == "limit_unsupported"
        assert reason in error["message"]
        assert "max_bandwidth=100" in error["message"]

        half = http.post("/api/runs/", json={"name": "half", "num_workers": 2, "num_cpus": 0.5})
        assert half.status_code == 400, half.text
        assert half.json()["error"]["code"] == "limit_unsupported"
        assert "num_cpus=0.5 needs a CFS quota" in half.json()["error"]["message"]
        assert http.get("/api/runs/").json() == []

        # Whole cores and no cap: it runs, over loopback, held to its cores by affinity.
        run = post_run(http, options=QUICK)
        pods = wait_for(
            lambda: len(p := pods_of(http, run["id"])) == 2 and p, what="the run's pods"
        )
        assert [pod["ip"] for pod in pods] == ["127.0.0.1", "127.0.0.1"]
        finished = wait_for_state(http, run["id"], "FINISHED", timeout_s=60)
        limits = finished["job_metadata"]["limits"]
        assert "loopback" in limits["network"]
        assert limits["cpu_method"] == "cpu_affinity"
        assert "val_accuracy" in run_metric_names(http, run["id"])
    assert_cleaned_up(local_servers.data_dir, run["job_id"], namespaced=False)
