"""The local backend: each rank a process on this machine, held to its CPUs by a CFS quota (or
affinity) and, when it can, put in its own network namespace with its egress shaped by ``tc``.

Workers run in their own sessions, so they outlive a crash of the server; what they need to be
found again (pids, namespaces, cgroups) is kept in ``<data_dir>/runs/<job_id>/state.json``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from distbench import cadvisor
from distbench.backends.base import (
    LOG_TAIL_LINES,
    LaunchReport,
    PodInfo,
    PodPhase,
    RunStatus,
    describe_exit,
    dist_backends,
)
from distbench.backends.local.launch import (
    Rendezvous,
    WorkerLaunch,
    check_working_dir,
    command_path,
    fork_warm,
    start_cold,
    worker_argv,
    worker_env,
)
from distbench.backends.local.limits import cpu, network
from distbench.backends.local.relay import Relay, socket_path_for
from distbench.backends.local.state import (
    LocalRun,
    WorkerState,
    net_as_dict,
    run_directory,
    runs_directory,
)
from distbench.backends.local.warm_launcher import WarmLauncher
from distbench.errors import BackendUnavailable, InvalidInput, LimitUnsupported
from distbench.ports import free_port
from distbench.settings import Settings
from distbench.store.records import NewRun, RunRecord
from distbench.worker import status as worker_status
from distbench.worker.status import StatusFile

log = logging.getLogger(__name__)

NAMESPACED_MASTER_PORT = 29500
# A run that arrives while the launcher is still importing waits for it: that is no slower
# than starting its workers cold, which would import the same things on the same cores.
LAUNCHER_WAIT_S = 30.0


class LocalBackend:
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runs_dir = runs_directory(settings.data_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.cpu = cpu.CpuLimiter()
        self.namespaces_problem = network.namespaces_available()
        self._lock = threading.RLock()
        self._runs: dict[int, LocalRun] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._relay: Relay | None = None
        self._launcher: WarmLauncher | None = None
        if settings.warm_launcher:
            self._launcher = WarmLauncher(python=settings.worker_python, data_dir=settings.data_dir)
            self._launcher.start()

    # -- the protocol ------------------------------------------------------------------------
    def check(self, new: NewRun) -> None:
        if new.gpu:
            self._check_gpus(new)
        elif new.backend not in dist_backends(gpu=False):
            raise InvalidInput(
                f"backend={new.backend!r} is not available on the local CPU backend: use gloo",
                details={"errors": [{"field": "backend", "message": "only gloo here"}]},
            )
        self.cpu.check(new.num_cpus)
        # The problem found at start, which ``launch`` goes by too: a cap is never accepted
        # here and then launched without namespaces.
        network.check_bandwidth(new.max_bandwidth, problem=self.namespaces_problem)
        if new.working_dir is not None:
            check_working_dir(new.working_dir)

    def _check_gpus(self, new: NewRun) -> None:
        gpus = gpu_count()
        if gpus == 0:
            raise LimitUnsupported(
                "gpu=true needs an NVIDIA GPU, and this machine has none: leave gpu out to train "
                "on CPUs",
                details={"errors": [{"field": "gpu", "message": "no GPU on this machine"}]},
            )
        if new.num_workers > gpus:
            raise LimitUnsupported(
                f"{new.num_workers} GPU workers need {new.num_workers} GPUs (one each), and "
                f"this machine has {gpus}",
                details={"errors": [{"field": "num_workers", "message": f"at most {gpus}"}]},
            )
        if new.backend not in dist_backends(gpu=True):
            raise InvalidInput(
                f"backend={new.backend!r} is not available here: use nccl (or gloo)",
                details={"errors": [{"field": "backend", "message": "nccl or gloo"}]},
            )

    def launch(self, run: RunRecord, *, server_url: str, run_token: str | None) -> LaunchReport:
        tag = secrets.token_hex(3)
        directory = run_directory(self.settings.data_dir, run.job_id)
        directory.mkdir(parents=True, exist_ok=True)
        state = LocalRun(run_id=run.id, job_id=run.job_id, directory=str(directory))
        net = None
        if self.namespaces_problem is None:
            net = network.plan_net(tag, run.num_workers, run.max_bandwidth)
        state.net = net_as_dict(net)
        with self._lock:
            self._runs[run.id] = state
        # Written ahead (see state.py): the network is on record before any of it exists.
        state.save()
        try:
            if net is not None:
                network.build(net)
            limits = self._start_workers(run, state, net, server_url, run_token)
        except Exception:
            self.stop(run, grace_s=0)
            raise
        state.launched = True
        state.save()
        applied: dict[str, object] = {
            "cpu_method": limits[0].method,
            "cpu_limit": limits[0].describe(),
            "torch_threads": max(1, math.ceil(run.num_cpus)),
            "network": (
                f"namespaces on bridge {net.bridge}, subnet {net.subnet}"
                if net is not None
                else "loopback (no namespaces: " + str(self.namespaces_problem) + ")"
            ),
            "bandwidth_limit": (
                f"HTB {run.max_bandwidth:g} Mbit/s egress per worker"
                if run.max_bandwidth is not None
                else "none"
            ),
        }
        return LaunchReport(pods=self._pods_of(state), applied=applied)

    def status(self, run: RunRecord) -> RunStatus:
        state = self._state(run)
        if state is not None and not state.launched:
            if state.cleaned:
                return RunStatus(
                    state="gone",
                    reason="a server stopped while creating its workers, which were removed",
                )
            return RunStatus(state="starting", reason="creating workers")
        if state is None or not state.workers:
            return RunStatus(state="gone", reason="no workers were recorded for this run")
        exit_codes = {w.pod_name: self._exit_code(w, Path(state.directory)) for w in state.workers}
        failed = [w for w in state.workers if exit_codes[w.pod_name] not in (None, 0)]
        if failed:
            first = min(failed, key=lambda w: _exit_seen_at(w, Path(state.directory)))
            code = exit_codes[first.pod_name]
            assert code is not None
            tails = {w.pod_name: tail(Path(w.log_path), LOG_TAIL_LINES) for w in failed}
            return RunStatus(
                state="failed",
                reason=f"worker {first.pod_name} (rank {first.rank}) {describe_exit(code)}",
                exit_codes=exit_codes,
                log_tails=tails,
            )
        if all(code == 0 for code in exit_codes.values()):
            return RunStatus(state="succeeded", exit_codes=exit_codes)
        directory = Path(state.directory)
        waiting = [
            w.rank for w in state.workers if not worker_status.is_ready(directory, w.pod_name)
        ]
        if waiting:
            return RunStatus(
                state="starting",
                reason=f"ranks {', '.join(map(str, waiting))} have not joined the process group",
                exit_codes=exit_codes,
            )
        return RunStatus(state="running", exit_codes=exit_codes)

    def list_pods(self) -> list[PodInfo]:
        with self._lock:
            states = [s for s in self._runs.values() if not s.cleaned]
        return [pod for state in states for pod in self._pods_of(state)]

    def resource_counters(self, pod_name: str) -> Mapping[str, float]:
        found = self._worker(pod_name)
        if found is None:
            return {}
        state, worker = found
        counters = _process_counters(worker, Path(state.directory))
        if worker.host_veth is not None and worker.namespace is not None:
            counters.update(
                network.counters(network.WorkerNet(worker.namespace, worker.host_veth, worker.ip))
            )
        return counters

    def logs(self, run: RunRecord, *, tail_lines: int | None = None) -> Mapping[str, str]:
        state = self._state(run)
        if state is None:
            return {}
        result = {}
        for worker in state.workers:
            path = Path(worker.log_path)
            result[worker.pod_name] = (
                tail(path, tail_lines) if tail_lines is not None else read_text(path)
            )
        return result

    def stop(self, run: RunRecord, *, grace_s: float) -> None:
        state = self._state(run)
        if state is None:
            return
        alive = _processes_of(state)
        # A cleaned run can still have workers: ones created after an earlier stop (a run
        # that timed out while its workers were being created).
        if state.cleaned and not alive:
            return
        for process in _one_per_group(alive):
            _signal_group(process.pid, signal.SIGTERM)
        _, still_alive = psutil.wait_procs(alive, timeout=max(grace_s, 0.0))
        for process in still_alive:
            _signal_group(process.pid, signal.SIGKILL)
        psutil.wait_procs(still_alive, timeout=5)
        for worker in state.workers:
            popen = self._procs.pop(worker.pod_name, None)
            if popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=5)
                    self._record_exit(worker, Path(state.directory), popen.returncode)
        self._clean(state)

    def reconcile(self, active: Sequence[RunRecord]) -> None:
        """Adopt the workers of ``active`` runs; stop and clean up after every other run this
        data directory knows that was left uncleaned (a server killed mid-run)."""
        active_jobs = {run.job_id: run for run in active}
        for directory in sorted(self.runs_dir.iterdir()):
            state = LocalRun.load(directory)
            if state is None or state.cleaned:
                continue
            if state.job_id in active_jobs and state.launched:
                with self._lock:
                    self._runs[state.run_id] = state
                if state.net is not None:
                    # Namespaced workers post their metrics through the relay's socket, which
                    # went away with the old server: without a new one they are all lost.
                    self._ensure_relay(self.settings.advertised_url)
                continue
            if state.launched:
                log.info("run %s: cleaning up what an earlier server left", state.run_id)
            else:
                # Half-created (the server was killed while creating it): it cannot be adopted,
                # and state.json records everything that may exist of it.
                log.warning(
                    "run %s: an earlier server stopped while creating its workers; removing "
                    "what it created",
                    state.run_id,
                )
            with self._lock:
                self._runs[state.run_id] = state
            stragglers = _processes_of(state)
            for process in stragglers:
                _signal_group(process.pid, signal.SIGKILL)
            psutil.wait_procs(stragglers, timeout=5)
            self._clean(state)

    def close(self) -> None:
        if self._relay is not None:
            self._relay.close()
        if self._launcher is not None:
            self._launcher.close()

    # -- internals ---------------------------------------------------------------------------
    def _start_workers(
        self,
        run: RunRecord,
        state: LocalRun,
        net: network.RunNet | None,
        server_url: str,
        run_token: str | None,
    ) -> list[cpu.CpuLimit]:
        # Checked here because the wrappers (``sh -c ... exec``, ``ip netns exec``) would start
        # fine and only the worker would fail, as an opaque exit code 127 or 1.
        python = self.settings.worker_python
        if shutil.which(python) is None:
            raise BackendUnavailable(
                f"worker_python={python!r} is not an executable file: set "
                "DISTBENCH_WORKER_PYTHON to a Python that has distbench and torch installed"
            )
        meeting = Rendezvous(
            master_addr=net.workers[0].ip if net is not None else "127.0.0.1",
            master_port=NAMESPACED_MASTER_PORT if net is not None else free_port(),
            server_url=server_url,
            server_socket=str(self._ensure_relay(server_url)) if net is not None else None,
            run_token=run_token,
            status_dir=state.directory,
            data_root=str(self.settings.run_data_root),
        )
        limits = []
        hosts = [w.ip for w in net.workers] if net is not None else ["127.0.0.1"] * run.num_workers
        for rank in range(run.num_workers):
            pod_name = f"{self.settings.release}-worker-{run.id}-{rank}"
            group = f"{self.settings.release}-{run.job_id}-{rank}"
            worker_net = net.workers[rank] if net is not None else None
            # On record before its cgroup and its process exist (see state.py).
            worker = WorkerState(
                pod_name=pod_name,
                rank=rank,
                pid=None,
                create_time=None,
                ip=worker_net.ip if worker_net is not None else "127.0.0.1",
                log_path=str(Path(state.directory) / f"{pod_name}.log"),
                cgroup=self.cpu.cgroup_for(group),
                namespace=worker_net.namespace if worker_net is not None else None,
                host_veth=worker_net.host_veth if worker_net is not None else None,
            )
            state.workers.append(worker)
            state.save()
            limit = self.cpu.create(group, run.num_cpus, rank)
            limits.append(limit)
            env = worker_env(run, rank, pod_name, meeting, namespaced=net is not None)
            if run.command is not None:
                env["PATH"] = command_path(python, env.get("PATH", os.defpath))
            launch = WorkerLaunch(
                pod_name=pod_name,
                argv=worker_argv(run, python, rank=rank, hosts=hosts),
                env=env,
                cwd=run.working_dir or state.directory,
                log_path=Path(worker.log_path),
                exit_file=worker_status.status_path(
                    Path(state.directory), pod_name, StatusFile.EXIT
                ),
                limit=limit,
                net=worker_net,
                warm=run.command is None,
            )
            pid = fork_warm(self._launcher, launch, wait_s=LAUNCHER_WAIT_S)
            if pid is None:
                popen = start_cold(launch)
                self._procs[pod_name] = popen
                pid = popen.pid
            worker.pid, worker.create_time = pid, _create_time(pid)
            state.save()
        return limits

    def _ensure_relay(self, server_url: str) -> Path:
        with self._lock:
            if self._relay is None:
                target = urlsplit(server_url)
                relay = Relay(
                    socket_path_for(self.settings.data_dir),
                    target.hostname or "127.0.0.1",
                    target.port or 80,
                )
                relay.start()
                self._relay = relay
            return self._relay.path

    def _state(self, run: RunRecord) -> LocalRun | None:
        with self._lock:
            state = self._runs.get(run.id)
            if state is not None and state.job_id == run.job_id:
                return state
            loaded = LocalRun.load(run_directory(self.settings.data_dir, run.job_id))
            if loaded is not None:
                self._runs[run.id] = loaded
            return loaded

    def _worker(self, pod_name: str) -> tuple[LocalRun, WorkerState] | None:
        with self._lock:
            for state in self._runs.values():
                for worker in state.workers:
                    if worker.pod_name == pod_name:
                        return state, worker
        return None

    def _exit_code(self, worker: WorkerState, directory: Path) -> int | None:
        if worker.pid is None:
            return None  # recorded, not forked yet
        popen = self._procs.get(worker.pod_name)
        if popen is not None:
            code = popen.poll()
            if code is not None:
                self._record_exit(worker, directory, code)
            return code
        if _process(worker) is not None:
            return None
        recorded = worker_status.read_exit_code(directory, worker.pod_name)
        # None: gone without a status, killed (SIGKILL, OOM) while no server was watching.
        return -int(signal.SIGKILL) if recorded is None else recorded

    def _record_exit(self, worker: WorkerState, directory: Path, code: int) -> None:
        worker_status.record_exit(
            worker_status.status_path(directory, worker.pod_name, StatusFile.EXIT), code
        )

    def _pods_of(self, state: LocalRun) -> list[PodInfo]:
        directory = Path(state.directory)
        pods = []
        for worker in state.workers:
            code = self._exit_code(worker, directory)
            phase: PodPhase
            if code is None:
                ready = worker_status.is_ready(directory, worker.pod_name)
                phase = "Running" if ready else "Pending"
            else:
                phase = "Succeeded" if code == 0 else "Failed"
            pods.append(
                PodInfo(
                    name=worker.pod_name,
                    labels={
                        "app": "distbench",
                        "component": "worker",
                        "release": self.settings.release,
                        "run-id": str(state.run_id),
                    },
                    phase=phase,
                    ip=worker.ip,
                    run_id=state.run_id,
                    rank=worker.rank,
                )
            )
        return pods

    def _clean(self, state: LocalRun) -> None:
        net = state.run_net()
        if net is not None:
            network.destroy(net)
        for worker in state.workers:
            cpu.remove(worker.cgroup)
        state.cleaned = True
        with contextlib.suppress(OSError):
            state.save()


PROC = Path("/proc")
NVIDIA_PROC_GPUS = Path("/proc/driver/nvidia/gpus")
DEVICE_DIR = Path("/dev")


def gpu_count() -> int:
    """NVIDIA GPUs on this machine, from the driver (the server never imports torch): its
    entries under /proc, else the GPUs' device files (/dev/nvidia0, ...), which containers and
    sandboxes that hide the driver's /proc entries still have."""
    if NVIDIA_PROC_GPUS.is_dir():
        listed = sum(1 for _ in NVIDIA_PROC_GPUS.iterdir())
        if listed:
            return listed
    return sum(
        1 for path in DEVICE_DIR.glob("nvidia[0-9]*") if path.name.removeprefix("nvidia").isdigit()
    )


def _exit_seen_at(worker: WorkerState, directory: Path) -> float:
    """When the worker's end was recorded; now, if it was not (yet)."""
    recorded = worker_status.exit_recorded_at(directory, worker.pod_name)
    return time.time() if recorded is None else recorded


def _process_counters(worker: WorkerState, directory: Path) -> dict[str, float]:
    """CPU and memory of the worker's process tree; after it exited, the CPU totals it wrote
    itself (``<pod>.usage``), so the last sample of a finished run is complete."""
    process = _process(worker)
    if process is None:
        usage = worker_status.read_usage(directory, worker.pod_name)
        if usage is None:
            return {}
        user, system = usage.user_s, usage.system_s
        return {
            cadvisor.CPU_SECONDS: user + system,
            cadvisor.CPU_USER_SECONDS: user,
            cadvisor.CPU_SYSTEM_SECONDS: system,
        }
    user = system = rss = 0.0
    try:
        with process.oneshot():
            tree = [process, *process.children(recursive=True)]
        for member in tree:
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                user += times.user + times.children_user
                system += times.system + times.children_system
                rss += member.memory_info().rss
    except psutil.Error:
        return {}
    return {
        cadvisor.CPU_SECONDS: user + system,
        cadvisor.CPU_USER_SECONDS: user,
        cadvisor.CPU_SYSTEM_SECONDS: system,
        cadvisor.MEMORY_BYTES: rss,
    }


def _create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        # Exited already: its exit file tells what happened; no later process matches this.
        return time.time()


def _process(worker: WorkerState) -> psutil.Process | None:
    """The worker's process if it is still the same one (pids are reused) and not a zombie."""
    if worker.pid is None or worker.create_time is None:
        return None
    try:
        process = psutil.Process(worker.pid)
        if abs(process.create_time() - worker.create_time) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def _processes_of(state: LocalRun) -> list[psutil.Process]:
    """The run's live processes: its recorded workers, and every process whose standard output
    is one of their logs. That finds a worker forked but not yet recorded when its server was
    killed (a cgroup finds it too, where there are cgroups), and what a worker started in a
    session of its own."""
    found = {p.pid: p for w in state.workers if (p := _process(w)) is not None}
    logs = {w.log_path for w in state.workers}
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in found:
            continue
        try:
            if os.readlink(entry / "fd" / "1") not in logs:
                continue
            process = psutil.Process(int(entry.name))
            if process.status() != psutil.STATUS_ZOMBIE:
                found[process.pid] = process
        except (OSError, psutil.Error):
            continue
    return list(found.values())


def _one_per_group(processes: list[psutil.Process]) -> list[psutil.Process]:
    """``processes`` less those in the group another of them leads: signalling that group
    reaches them, and a second SIGTERM could cut a graceful exit short."""
    leaders = {process.pid for process in processes}
    chosen = []
    for process in processes:
        try:
            group = os.getpgid(process.pid)
        except ProcessLookupError:
            continue
        if group == process.pid or group not in leaders:
            chosen.append(process)
    return chosen


def _signal_group(pid: int, signum: int) -> None:
    """``pid``'s process group (a worker leads its own), or ``pid`` alone if it leads none."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
    except PermissionError:
        pass


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log (reads only the end of big files)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024 * max(1, lines // 100 + 1)))
            data = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:]) + ("\n" if data.endswith("\n") else "")
