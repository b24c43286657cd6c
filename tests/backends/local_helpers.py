"""Real servers with the real local backend (worker processes, cgroups, network namespaces), and
what the tests of real runs share: polling with deadlines, finding a run's worker processes, and
checking that a run left nothing behind on the machine.

Every test that starts a run uses the ``local_servers`` fixture; its teardown aborts what is
still active, stops the servers (threads and subprocesses), kills any worker left over and
removes the namespaces and cgroups, even when the test failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from distbench.app import prepare_database
from distbench.backends.local.backend import LocalBackend
from distbench.backends.local.state import LocalRun, run_directory
from distbench.settings import Settings
from tests import polling
from tests.api.helpers import get_run as get_run
from tests.api.helpers import start_run as post_run
from tests.conftest import ServerThread, free_port

T = TypeVar("T")

IS_ROOT = os.geteuid() == 0
requires_root = pytest.mark.skipif(
    not IS_ROOT,
    reason="needs root: network namespaces, tc and cgroup CPU quotas (CI runs as root)",
)

# Digits options: reached in the first epoch (a run of a few seconds) ...
QUICK = {"target_accuracy": 0.5}
# ... and never reached (val accuracy 1.0 does not happen), so the run trains until stopped.
ENDLESS = {"target_accuracy": 1.0, "max_epochs": 10_000}
# Not ended yet. Queued runs come first, so a teardown aborts them before the active run
# (runs are listed newest first), and no queued run starts while a test is being torn down.
ACTIVE = ("QUEUED", "INITIALIZED", "STARTED")


def wait_for(check: Callable[[], T | None], *, what: str, timeout_s: float = 30) -> T:
    """``tests.polling.wait_for`` with the longer default that real worker processes need."""
    return polling.wait_for(check, what=what, timeout_s=timeout_s, interval_s=0.05)


@dataclass
class LocalServer:
    """A server on the real local backend: a thread in this process, or the real CLI."""

    url: str
    settings: Settings
    backend: LocalBackend | None = None
    thread: ServerThread | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def alive(self) -> bool:
        if self.thread is not None:
            return True
        return self.process is not None and self.process.poll() is None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        """A clean shutdown (workers keep running: they live in their own sessions)."""
        if self.thread is not None:
            self.thread.__exit__(None, None, None)
            self.thread = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """``kill -9`` the CLI server: no shutdown code runs at all."""
        assert self.process is not None, "only a subprocess server can be killed"
        self.process.kill()
        self.process.wait(timeout=30)


@dataclass
class LocalServers:
    database_url: str
    data_dir: Path
    started: list[LocalServer] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": free_port(),
            "database_url": self.database_url,
            "data_dir": self.data_dir,
            "collect_interval_s": 0.2,
            "start_timeout_s": 60,
        }
        values.update(overrides)
        return Settings(**values)

    def start(self, **overrides: Any) -> LocalServer:
        """A server thread with ``LocalBackend`` (``overrides`` are Settings fields), on a
        database prepared first, as ``distbench serve`` prepares it (a fresh SQLite file is
        migrated)."""
        settings = self.settings(**overrides)
        prepare_database(settings)
        backend = LocalBackend(settings)
        thread = ServerThread(settings, backend)
        server = LocalServer(
            url=f"http://127.0.0.1:{settings.port}",
            settings=settings,
            backend=backend,
            thread=thread,
        )
        self.started.append(server)
        thread.__enter__()
        return server

    def start_cli(
        self,
        *,
        port: int | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> LocalServer:
        """``distbench serve`` in its own process, configured as a user would (``args``: more
        options; ``env``: more variables, e.g. ``DISTBENCH_TOKEN``)."""
        settings = self.settings(**({"port": port} if port is not None else {}))
        log_path = self.data_dir.parent / f"serve-{len(self.started)}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DISTBENCH_")},
            "DISTBENCH_DATA_DIR": str(self.data_dir),
            "DISTBENCH_START_TIMEOUT_S": "60",
            **(env or {}),
        }
        command = [
            str(Path(sys.executable).parent / "distbench"),
            "serve",
            "--port",
            str(settings.port),
            "--database-url",
            self.database_url,
            "--collect-interval",
            "0.2",
            "--log-level",
            "warning",
            *args,
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        server = LocalServer(
            url=f"http://127.0.0.1:{settings.port}",
            settings=settings,
            process=process,
            log_path=log_path,
        )
        self.started.append(server)

        def answering() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"distbench serve exited: {log_path.read_text()}")
            try:
                return httpx.get(f"{server.url}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answering, what="distbench serve to answer")
        return server

    def close(self) -> None:
        """Abort what is active, stop every server, then remove whatever is left on the machine."""
        for server in reversed(self.started):
            if not server.alive:
                continue
            with server.client() as http:
                abort_active_runs(http)
            break
        for server in reversed(self.started):
            with contextlib.suppress(Exception):
                server.stop()
            if server.process is not None and server.process.poll() is None:
                server.process.kill()
                server.process.wait(timeout=30)
        if self.data_dir.exists():
            # A backend that knows no active run kills every worker recorded under the data
            # directory and removes its namespaces and cgroups.
            sweeper = LocalBackend(self.settings(warm_launcher=False))
            try:
                sweeper.reconcile([])
            finally:
                sweeper.close()
        for server in self.started:
            # Reap the workers this process started, so none is left a zombie (and Popen does
            # not warn about a child it never waited for).
            if server.backend is not None:
                for popen in server.backend._procs.values():
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        popen.wait(timeout=10)


@pytest.fixture
def local_servers(migrated_database_url: str, tmp_path: Path) -> Iterator[LocalServers]:
    """Servers on the real local backend sharing one database and data directory."""
    servers = LocalServers(database_url=migrated_database_url, data_dir=tmp_path / "data")
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture
def sqlite_local_servers(tmp_path: Path) -> Iterator[LocalServers]:
    """``local_servers`` on a SQLite file only, for tests of the backend that restart servers
    many times and do not depend on the database."""
    servers = LocalServers(
        database_url=f"sqlite:///{tmp_path / 'distbench.db'}", data_dir=tmp_path / "data"
    )
    try:
        yield servers
    finally:
        servers.close()


# -- runs ---------------------------------------------------------------------------------------
def abort_active_runs(http: httpx.Client) -> None:
    """Abort every active run, as a test's teardown does before stopping its servers."""
    with contextlib.suppress(httpx.HTTPError):
        for run in http.get("/api/runs/").json():
            if run["state"] in ACTIVE:
                http.delete(f"/api/runs/{run['id']}/")


def wait_for_state(
    http: httpx.Client, run_id: int, *states: str, timeout_s: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        run = get_run(http, run_id)
        if run["state"] in states:
            return run
        if run["state"] not in ACTIVE:
            raise AssertionError(f"run {run_id} ended {run['state']}, not {states}: {run}")
        return None

    return wait_for(reached, what=f"run {run_id} to be {' or '.join(states)}", timeout_s=timeout_s)


def started_run(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    """A run whose workers have all joined the process group."""
    run = post_run(http, **fields)
    return wait_for_state(http, run["id"], "STARTED")


def run_state_file(data_dir: Path, job_id: str) -> LocalRun:
    state = LocalRun.load(run_directory(data_dir, job_id))
    assert state is not None, f"no state.json for job {job_id}"
    return state


def worker_pids(data_dir: Path, job_id: str) -> dict[int, int]:
    """Rank -> pid of the run's workers, as the backend recorded them (none yet: empty)."""
    state = LocalRun.load(run_directory(data_dir, job_id))
    return {} if state is None else {w.rank: w.pid for w in state.workers if w.pid is not None}


def is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_worker(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def run_metric_names(http: httpx.Client, run_id: int, **params: Any) -> dict[str, Any]:
    response = http.get(f"/api/metrics/{run_id}/", params={"metric_type": "run", **params})
    assert response.status_code == 200, response.text
    series: dict[str, Any] = response.json()
    return series


def pod_series(http: httpx.Client, pod_name: str) -> dict[str, list[dict[str, Any]]]:
    response = http.get(f"/api/metrics/{pod_name}/")
    assert response.status_code == 200, response.text
    series: dict[str, list[dict[str, Any]]] = response.json()
    return series


# -- what a run leaves on the machine ------------------------------------------------------------
def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def link_names() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines()}


def leftovers(data_dir: Path, job_id: str) -> list[str]:
    """What of the run still exists: worker processes, namespaces, veths, bridge, cgroups."""
    state = run_state_file(data_dir, job_id)
    found = [f"process {pid}" for pid in run_processes(data_dir, job_id)]
    if not state.cleaned:
        found.append("state.json not marked cleaned")
    namespaces = netns_names()
    links = link_names()
    for worker in state.workers:
        if worker.namespace is not None and worker.namespace in namespaces:
            found.append(f"namespace {worker.namespace}")
        if worker.host_veth is not None and worker.host_veth in links:
            found.append(f"veth {worker.host_veth}")
        if worker.cgroup is not None and Path(worker.cgroup).exists():
            found.append(f"cgroup {worker.cgroup}")
    if state.net is not None and state.net["bridge"] in links:
        found.append(f"bridge {state.net['bridge']}")
    return found


def run_processes(data_dir: Path, job_id: str) -> list[int]:
    """Live processes of the run, recorded or not: its workers' pids, what is in its cgroups,
    and every process writing to a log in the run's directory (a worker and its children)."""
    directory = str((run_directory(data_dir, job_id)).resolve())
    state = LocalRun.load(run_directory(data_dir, job_id))
    pids = set()
    if state is not None:
        pids |= {w.pid for w in state.workers if w.pid is not None}
        for worker in state.workers:
            with contextlib.suppress(OSError):
                procs = Path(worker.cgroup or "/nonexistent") / "cgroup.procs"
                pids |= {int(pid) for pid in procs.read_text().split()}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if os.readlink(entry / "fd" / "1").startswith(directory + "/"):
                pids.add(int(entry.name))
    return sorted(pid for pid in pids if is_running(pid))


def assert_cleaned_up(data_dir: Path, job_id: str, *, namespaced: bool = IS_ROOT) -> None:
    deadline = time.monotonic() + 15
    while (found := leftovers(data_dir, job_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert found == [], f"left behind after the run ended: {found}"
    if namespaced:
        state = run_state_file(data_dir, job_id)
        # Every worker had a namespace and a cgroup: the check above looked at them.
        assert all(w.namespace and w.cgroup for w in state.workers), state


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
