"""A server started with DISTBENCH_TOKEN in its environment: its task workers (forked from the
warm launcher, or started cold) and the launcher itself never hold the server token; a worker
holds only its run's token."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from distbench.orchestrator.tokens import run_token
from tests.backends.local_helpers import (
    ENDLESS,
    LocalServer,
    LocalServers,
    run_metric_names,
    started_run,
    wait_for,
    worker_pids,
)

SERVER_TOKEN = "server-token-that-workers-never-see"

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def environ_of(pid: int) -> dict[str, str]:
    """The environment a process was started with, as any user allowed to read
    /proc/PID/environ sees it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    assert SERVER_TOKEN.encode() not in raw, f"process {pid} holds the server token"
    environ = {}
    for entry in raw.decode(errors="replace").split("\0"):
        key, _, value = entry.partition("=")
        environ[key] = value
    return environ


def admin_client(server: LocalServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {SERVER_TOKEN}"}, timeout=30
    )


def launcher_pid(server: LocalServer) -> int:
    assert server.backend is not None
    assert server.backend._launcher is not None
    process = server.backend._launcher._process
    assert process is not None, "the warm launcher did not start"
    return process.pid


@pytest.mark.parametrize("warm", [True, False], ids=["forked", "cold"])
def test_workers_get_their_run_token_and_never_the_server_token(
    local_servers: LocalServers, monkeypatch: pytest.MonkeyPatch, warm: bool
) -> None:
    monkeypatch.setenv("DISTBENCH_TOKEN", SERVER_TOKEN)
    server = local_servers.start(warm_launcher=warm)
    assert server.settings.token is not None
    assert server.settings.token.get_secret_value() == SERVER_TOKEN

    with admin_client(server) as admin:
        run = started_run(admin, num_workers=1, options=ENDLESS)
        pids = worker_pids(local_servers.data_dir, run["job_id"])
        assert list(pids) == [0]
        worker = environ_of(pids[0])
        if warm:
            launcher = launcher_pid(server)
            assert psutil.Process(pids[0]).ppid() == launcher, "the worker was not forked"
            # A forked worker's /proc environ is the launcher's starting one: no token at all.
            # Its live environment is the run's, which it posts its metrics with.
            assert not [key for key in environ_of(launcher) if key.startswith("DISTBENCH_")]
            assert not [key for key in worker if key.startswith("DISTBENCH_")]
        else:
            assert worker["DISTBENCH_TOKEN"] == run_token(SERVER_TOKEN, run["id"])
        # The worker can post: it holds a token this server accepts, and that is its run's.
        wait_for(lambda: run_metric_names(admin, run["id"]), what="the worker's first metrics")
