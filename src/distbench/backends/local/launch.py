"""Starting one worker process of the local backend: its environment, then a fork from the warm
launcher or a cold start, either way inside its CPU limit and network namespace from its first
instruction."""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from distbench.backends import placeholders
from distbench.backends.base import run_worker_env, torch_threads
from distbench.backends.local.limits import cpu, network
from distbench.backends.local.warm_launcher import LauncherUnavailable, WarmLauncher
from distbench.errors import InvalidInput
from distbench.settings import without_server_settings
from distbench.store.records import RunRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerLaunch:
    """Everything needed to start one rank."""

    pod_name: str
    argv: list[str]  # what runs, before the CPU and namespace wrappers
    env: dict[str, str]
    cwd: str
    log_path: Path
    exit_file: Path
    limit: cpu.CpuLimit
    net: network.WorkerNet | None
    # Benchmark tasks can be forked from the warm launcher; a custom command is its own program.
    warm: bool


@dataclass(frozen=True, slots=True)
class Rendezvous:
    """Where rank 0 listens, and what the workers need to reach the server."""

    master_addr: str
    master_port: int
    server_url: str
    server_socket: str | None
    run_token: str | None
    status_dir: str
    data_root: str | None = None  # where the task's path options must lie (checked again)


def worker_env(
    run: RunRecord, rank: int, pod_name: str, meeting: Rendezvous, *, namespaced: bool
) -> dict[str, str]:
    """torchrun's variables and distbench's, on top of the server's environment (less its own
    DISTBENCH_ settings, which are not the worker's business)."""
    task = run.command is None
    worker = run_worker_env(
        run,
        rank=rank,
        local_rank=rank,
        master_addr=meeting.master_addr,
        master_port=meeting.master_port,
        pod_name=pod_name,
        server_url=meeting.server_url,
        server_socket=meeting.server_socket,
        token=meeting.run_token,
        status_dir=Path(meeting.status_dir),
        data_root=Path(meeting.data_root) if task and meeting.data_root is not None else None,
    )
    env = {
        **without_server_settings(os.environ),
        **worker.to_environ(),
        "LOCAL_WORLD_SIZE": str(run.num_workers),
        "GLOO_SOCKET_IFNAME": network.IFNAME if namespaced else "lo",
        "OMP_NUM_THREADS": torch_threads(run),
        "PYTHONUNBUFFERED": "1",
    }
    if run.gpu:
        env.update(
            gpu_environment(rank, namespaced=namespaced, capped=run.max_bandwidth is not None)
        )
    return env


def worker_argv(run: RunRecord, python: str, *, rank: int, hosts: list[str]) -> list[str]:
    """A task runs as ``python -m distbench.worker``; a custom command runs under a small
    wrapper that records its exit status and CPU time the way a task's worker does, with its
    placeholders filled in for this rank (``hosts``: every rank's address, rank 0 first)."""
    if run.command is None:
        return [python, "-m", "distbench.worker"]
    command = placeholders.expand_command(
        run.command, run_id=run.id, rank=str(rank), hosts=hosts, backend=run.backend
    )
    return [python, "-m", "distbench.worker.command", "--", *command]


def command_path(python: str, path: str) -> str:
    """PATH for a custom command: the worker Python's directory first, so ``python`` in a
    command is the one that has distbench (and torch) installed."""
    return os.pathsep.join([str(Path(python).parent), path])


def check_working_dir(path: str) -> None:
    """A custom command's working directory must be an existing directory on this machine."""
    problem = None
    if not Path(path).exists():
        problem = "does not exist"
    elif not Path(path).is_dir():
        problem = "is not a directory"
    elif not os.access(path, os.R_OK | os.X_OK):
        problem = "is not readable by the server"
    if problem is not None:
        raise InvalidInput(
            f"working_dir={path!r} {problem} on the server's machine",
            details={"errors": [{"field": "working_dir", "message": problem}]},
        )


def fork_warm(launcher: WarmLauncher | None, launch: WorkerLaunch, *, wait_s: float) -> int | None:
    """The worker's pid, forked from the warm launcher; None when it cannot be."""
    if not launch.warm or launcher is None or not launcher.wait_ready(wait_s):
        return None
    request = {
        "env": launch.env,
        "cwd": launch.cwd,
        "log_path": str(launch.log_path),
        "exit_file": str(launch.exit_file),
        "netns": launch.net.namespace if launch.net is not None else None,
        "cgroup_procs": (
            str(Path(launch.limit.cgroup) / "cgroup.procs") if launch.limit.cgroup else None
        ),
        "cpus": list(launch.limit.cpu_list) or None,
    }
    try:
        return launcher.spawn(request)
    except LauncherUnavailable as exc:
        log.warning("%s; starting %s cold", exc, launch.pod_name)
        return None


def start_cold(launch: WorkerLaunch) -> subprocess.Popen[bytes]:
    """A new process for the worker: ``ip netns exec`` into its namespace, inside its limit."""
    command = launch.argv
    if launch.net is not None:
        command = ["ip", "netns", "exec", launch.net.namespace, *command]
    command = cpu.wrap_command(launch.limit, command)
    with launch.log_path.open("ab") as log_file:
        return subprocess.Popen(  # noqa: S603 -- arguments built here, no shell string
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=launch.env,
            cwd=launch.cwd,
            # Own session: a worker survives (and is not signalled with) the server.
            start_new_session=True,
        )


def gpu_environment(rank: int, *, namespaced: bool, capped: bool) -> dict[str, str]:
    """One GPU per rank, and NCCL pointed at the worker's interface (the worker's device,
    cuda, is in its ``WorkerEnv``). Under a bandwidth cap NCCL must not take the GPUs' direct
    paths (P2P, shared memory), which bypass the shaped link."""
    env = {
        "CUDA_VISIBLE_DEVICES": str(rank),
        "NCCL_SOCKET_IFNAME": network.IFNAME if namespaced else "lo",
    }
    if capped:
        env.update(NCCL_P2P_DISABLE="1", NCCL_SHM_DISABLE="1", NCCL_IB_DISABLE="1")
    return env
