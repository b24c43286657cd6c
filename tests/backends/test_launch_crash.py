"""A server killed (``kill -9``) while it creates a capped run's workers: its restart removes
everything the launch had created (namespaces, bridge, veths, cgroups, worker processes, recorded
or not) and fails the run."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from distbench.backends.local.state import LocalRun, run_directory
from tests.backends.local_helpers import (
    ENDLESS,
    LocalServer,
    LocalServers,
    assert_cleaned_up,
    get_run,
    post_run,
    requires_root,
    run_processes,
    wait_for,
)
from tests.conftest import free_port

# Enough that forking them takes a while after the first two: the kill lands mid-launch.
WORKERS = 8

# Moments of the launch to kill the server at, read off state.json as it is written. (Killed
# once launched, the run is adopted: tests/orchestrator/test_lifecycle.py.)
KILL_POINTS: dict[str, Callable[[LocalRun], bool]] = {
    "while creating the network": lambda s: s.net is not None and not s.workers,
    "while forking workers": lambda s: sum(w.pid is not None for w in s.workers) >= 2,
}


def launcher_socket(server: LocalServer) -> Path:
    """Where the server's warm launcher listens (``WarmLauncher`` names it so): there once it
    has imported everything, so a run's workers are forked one after another at once."""
    assert server.process is not None
    key = f"{server.settings.data_dir.resolve()}:{server.process.pid}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"distbench-launcher-{digest}.sock"


def kill_when(server: LocalServer, state_dir: Path, reached: Callable[[LocalRun], bool]) -> str:
    """``kill -9`` the server as soon as the run's state.json shows ``reached``; what it showed."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = LocalRun.load(state_dir)
        if state is not None and reached(state):
            server.kill()
            assert not state.launched, "the launch finished before the kill"
            forked = sum(w.pid is not None for w in state.workers)
            return f"{len(state.workers)} recorded, {forked} forked"
        time.sleep(0.005)
    raise AssertionError("the launch never got there")


@requires_root
def test_server_killed_while_launching_a_capped_run_leaves_nothing(
    sqlite_local_servers: LocalServers,
) -> None:
    servers = sqlite_local_servers
    port = free_port()
    server = servers.start_cli(port=port)
    for moment, reached in KILL_POINTS.items():
        if moment == "while forking workers":
            # Forked from the warm launcher, one after another at once (until it is ready the
            # launch waits for it).
            wait_for(launcher_socket(server).exists, what="the warm launcher", timeout_s=90)
        with server.client() as http:
            run = post_run(
                http, num_workers=WORKERS, num_cpus=0.25, max_bandwidth=100, options=ENDLESS
            )
        state_dir = run_directory(servers.data_dir, run["job_id"])
        seen = kill_when(server, state_dir, reached)

        server = servers.start_cli(port=port)
        with server.client() as http:
            run_id = run["id"]
            settled = wait_for(
                lambda: (r := get_run(http, run_id))["state"] != "INITIALIZED" and r,  # noqa: B023
                what=f"run {run_id} (killed {moment}: {seen}) to fail or be adopted",
            )
            assert settled["state"] == "FAILED", settled
            assert "stopped while creating its workers" in settled["job_metadata"]["error"]
        # Namespaces, veths, bridge, cgroups and processes, recorded or found by their logs.
        assert_cleaned_up(servers.data_dir, run["job_id"])
        assert run_processes(servers.data_dir, run["job_id"]) == []
