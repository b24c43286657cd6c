"""Runs across server restarts (reconciliation), with real workers; and the orchestrator's
handling of a run whose start times out while its workers are still being created."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping

import pytest

from distbench.backends.base import LaunchReport
from distbench.orchestrator import Orchestrator
from distbench.store import runs as run_store
from distbench.store.engine import create_engine
from distbench.store.records import NewRun, RunRecord
from tests.backends.local_helpers import (
    ENDLESS,
    LocalServers,
    assert_cleaned_up,
    get_run,
    is_running,
    run_metric_names,
    started_run,
    wait_for,
    wait_for_state,
    worker_pids,
)
from tests.fake_backend import FakeBackend


def latest_point_date(series: Mapping[str, list[dict[str, str]]], name: str) -> str:
    return series[name][-1]["date"]


def test_restarted_server_adopts_the_running_run(local_servers: LocalServers) -> None:
    first = local_servers.start()
    with first.client() as http:
        run = started_run(http, options=ENDLESS)
        run_id = run["id"]
        pids = worker_pids(local_servers.data_dir, run["job_id"])
        series = wait_for(
            lambda: (s := run_metric_names(http, run_id)) and "val_accuracy" in s and s,
            what="the first epoch's metrics",
        )
        last_seen = latest_point_date(series, "val_accuracy")

    first.stop()
    # The workers do not depend on the server process: they keep training while it is away.
    assert all(is_running(pid) for pid in pids.values())

    second = local_servers.start(port=first.settings.port)
    with second.client() as http:
        adopted = get_run(http, run_id)
        assert adopted["state"] == "STARTED"
        assert adopted["job_metadata"] == run["job_metadata"]
        pods = http.get("/api/pods/").json()
        assert sorted(pod["name"] for pod in pods) == [
            f"distbench-worker-{run_id}-0",
            f"distbench-worker-{run_id}-1",
        ]
        assert {pod["phase"] for pod in pods} == {"Running"}
        # The adopted workers' reports reach the new server (over its relay when namespaced).
        wait_for(
            lambda: run_metric_names(http, run_id, since=last_seen).get("val_accuracy"),
            what="metrics posted to the new server by the adopted workers",
        )
        wait_for(
            lambda: http.get(f"/api/metrics/distbench-worker-{run_id}-0/").json(),
            what="the new server's collector to sample the adopted workers",
        )
        assert get_run(http, run_id)["state"] == "STARTED"

        aborted = http.delete(f"/api/runs/{run_id}/").json()
        assert aborted["state"] == "ABORTED"
    assert not any(is_running(pid) for pid in pids.values())
    assert_cleaned_up(local_servers.data_dir, run["job_id"])


def test_server_killed_with_sigkill_restarts_and_adopts(local_servers: LocalServers) -> None:
    first = local_servers.start_cli()
    with first.client() as http:
        run = started_run(http, options=ENDLESS)
    pids = worker_pids(local_servers.data_dir, run["job_id"])
    first.kill()
    assert all(is_running(pid) for pid in pids.values())

    second = local_servers.start_cli(port=first.settings.port)
    with second.client() as http:
        assert get_run(http, run["id"])["state"] == "STARTED"
        # Still adopted a moment later: the new server's monitor sees the workers running.
        time.sleep(1)
        assert get_run(http, run["id"])["state"] == "STARTED"
        assert all(is_running(pid) for pid in pids.values())
        assert http.delete(f"/api/runs/{run['id']}/").json()["state"] == "ABORTED"
    wait_for(
        lambda: not any(is_running(pid) for pid in pids.values()),
        what="the workers to be stopped",
        timeout_s=15,
    )
    assert_cleaned_up(local_servers.data_dir, run["job_id"])


def test_workers_dead_while_the_server_was_down_fail_the_run(local_servers: LocalServers) -> None:
    first = local_servers.start_cli()
    with first.client() as http:
        run = started_run(http, options=ENDLESS)
    pids = worker_pids(local_servers.data_dir, run["job_id"])
    first.kill()
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: not any(is_running(pid) for pid in pids.values()),
        what="the workers to die",
        timeout_s=10,
    )

    second = local_servers.start_cli(port=first.settings.port)
    with second.client() as http:
        failed = wait_for_state(http, run["id"], "FAILED", timeout_s=15)
        metadata = failed["job_metadata"]
        assert "SIGKILL" in metadata["error"] or "gone" in metadata["error"], metadata
        assert set(metadata["exit_codes"]) == {
            f"distbench-worker-{run['id']}-0",
            f"distbench-worker-{run['id']}-1",
        }
        assert http.get("/api/pods/").json() == []
    # The new server removed the namespaces, veths, bridge and cgroups left behind.
    assert_cleaned_up(local_servers.data_dir, run["job_id"])


def test_run_without_workers_on_record_fails_at_restart(local_servers: LocalServers) -> None:
    # A run the database says is STARTED, but of which this machine knows nothing (its data
    # directory was lost): the server must not adopt a run that is not there.
    engine = create_engine(local_servers.database_url)
    try:
        with engine.begin() as conn:
            orphan = run_store.create_run(
                conn=conn,
                new=NewRun(
                    name="orphan",
                    num_workers=2,
                    num_cpus=1,
                    max_bandwidth=None,
                    benchmark="digits",
                    backend="gloo",
                ),
            )
            run_store.transition(
                conn=conn, run_id=orphan.id, to_state="STARTED", from_states=("INITIALIZED",)
            )
    finally:
        engine.dispose()

    server = local_servers.start()
    with server.client() as http:
        failed = get_run(http, orphan.id)
        assert failed["state"] == "FAILED"
        assert "restarted" in failed["job_metadata"]["error"]


# -- a start timeout that fires while the backend is still creating workers ---------------------
class SlowLaunchBackend(FakeBackend):
    """A fake whose ``launch`` waits until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__()
        self.launch_entered = threading.Event()
        self.release_launch = threading.Event()
        self.stopped_after_launch: list[int] = []
        self._launched = threading.Event()

    def launch(self, run: RunRecord, *, server_url: str, run_token: str | None) -> LaunchReport:
        self.launch_entered.set()
        assert self.release_launch.wait(timeout=30), "the test never released the launch"
        report = super().launch(run, server_url=server_url, run_token=run_token)
        self._launched.set()
        return report

    def stop(self, run: RunRecord, *, grace_s: float) -> None:
        if self._launched.is_set():
            self.stopped_after_launch.append(run.id)
        super().stop(run, grace_s=grace_s)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slow_orchestrator(
    migrated_database_url: str,
) -> Iterator[tuple[Orchestrator, SlowLaunchBackend, FakeClock]]:
    engine = create_engine(migrated_database_url)
    backend = SlowLaunchBackend()
    clock = FakeClock()
    orchestrator = Orchestrator(
        engine=engine,
        backend=backend,
        server_url="http://127.0.0.1:9",
        server_token=None,
        start_timeout_s=5,
        clock=clock,
    )
    try:
        yield orchestrator, backend, clock
    finally:
        backend.release_launch.set()
        orchestrator.close()
        engine.dispose()


def test_start_timeout_during_launch_stops_the_workers_created_after_it(
    slow_orchestrator: tuple[Orchestrator, SlowLaunchBackend, FakeClock],
) -> None:
    orchestrator, backend, clock = slow_orchestrator
    run = orchestrator.create_run(
        NewRun(
            name="slow",
            num_workers=2,
            num_cpus=1,
            max_bandwidth=None,
            benchmark="digits",
            backend="gloo",
        )
    )
    assert backend.launch_entered.wait(timeout=10)
    clock.now += 6  # past start_timeout_s while launch() is still running
    orchestrator.poll_once()
    with orchestrator.engine.connect() as conn:
        failed = run_store.get_run(conn=conn, run_id=run.id)
    assert failed.state == "FAILED"
    assert "start_timeout_s=5" in failed.job_metadata["error"]
    assert "creating workers" in failed.job_metadata["error"]

    # The workers created after the failure are stopped as soon as launch() returns.
    backend.release_launch.set()
    wait_for(lambda: backend.stopped_after_launch == [run.id], what="the late workers' stop")
    assert {pod.phase for pod in backend.list_pods()} == {"Failed"}
    # The failure stands: nothing moves the run out of FAILED.
    orchestrator.poll_once()
    with orchestrator.engine.connect() as conn:
        assert run_store.get_run(conn=conn, run_id=run.id).state == "FAILED"
