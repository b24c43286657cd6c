"""The worker's environment, the contract between whoever starts a worker (the local and the
Kubernetes backends, or plain ``torchrun``) and the worker itself: torchrun's variables plus
distbench's. ``WorkerVar`` is the one spelling of every name; ``WorkerEnv`` is both what a
launcher writes (``to_environ``) and what a worker reads and checks (``from_environ``), so a
misconfigured worker says precisely what is wrong and exits, instead of hanging."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

# A run that ends while its server restarts still delivers every metric point.
DEFAULT_METRICS_FLUSH_S = 300.0
DEFAULT_BENCHMARK = "digits"
DEVICES = ("cpu", "cuda")


class WorkerVar(StrEnum):
    """The variables a worker reads. The ``DISTBENCH_`` names are written only through
    ``WorkerEnv.to_environ`` (a test finds any other spelling in ``src/``)."""

    RANK = "RANK"
    WORLD_SIZE = "WORLD_SIZE"
    LOCAL_RANK = "LOCAL_RANK"
    MASTER_ADDR = "MASTER_ADDR"
    MASTER_PORT = "MASTER_PORT"
    RUN_ID = "DISTBENCH_RUN_ID"
    POD_NAME = "DISTBENCH_POD_NAME"
    SERVER_URL = "DISTBENCH_SERVER_URL"
    SERVER_SOCKET = "DISTBENCH_SERVER_SOCKET"
    TOKEN = "DISTBENCH_TOKEN"  # noqa: S105 -- the variable's name, not a token
    BENCHMARK = "DISTBENCH_BENCHMARK"
    OPTIONS = "DISTBENCH_OPTIONS"
    NUM_CPUS = "DISTBENCH_NUM_CPUS"
    DIST_BACKEND = "DISTBENCH_DIST_BACKEND"
    STATUS_DIR = "DISTBENCH_STATUS_DIR"
    DEVICE = "DISTBENCH_DEVICE"
    METRICS_FLUSH_S = "DISTBENCH_METRICS_FLUSH_S"
    DATA_ROOT = "DISTBENCH_DATA_ROOT"


class WorkerEnvError(ValueError):
    """The environment cannot run a worker; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class WorkerEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    dist_backend: str = "gloo"
    run_id: int | None = None
    pod_name: str = ""
    server_url: str | None = None
    server_socket: str | None = None
    token: str | None = None
    benchmark: str = DEFAULT_BENCHMARK
    options: Mapping[str, Any] = field(default_factory=dict)
    num_cpus: float | None = None
    status_dir: Path | None = None
    device: str = "cpu"
    # How long a worker waits at its end for the server to take its last metrics.
    metrics_flush_s: float = DEFAULT_METRICS_FLUSH_S
    # Set by the server: a task's path options must lie under it (checked again here).
    data_root: Path | None = None

    def to_environ(self) -> dict[str, str]:
        """The variables that give a worker this environment. What is unset (None), and the
        defaults a worker assumes anyway (cpu, the flush time), is left out, so a launcher's
        environment says only what it chose."""
        values: dict[WorkerVar, object | None] = {
            WorkerVar.RANK: self.rank,
            WorkerVar.WORLD_SIZE: self.world_size,
            WorkerVar.LOCAL_RANK: self.local_rank,
            WorkerVar.MASTER_ADDR: self.master_addr,
            WorkerVar.MASTER_PORT: self.master_port,
            WorkerVar.RUN_ID: self.run_id,
            WorkerVar.POD_NAME: self.pod_name or None,
            WorkerVar.SERVER_URL: self.server_url,
            WorkerVar.SERVER_SOCKET: self.server_socket,
            WorkerVar.TOKEN: self.token,
            WorkerVar.BENCHMARK: self.benchmark,
            WorkerVar.OPTIONS: json.dumps(dict(self.options)),
            WorkerVar.NUM_CPUS: self.num_cpus,
            WorkerVar.DIST_BACKEND: self.dist_backend,
            WorkerVar.STATUS_DIR: self.status_dir,
            WorkerVar.DEVICE: None if self.device == "cpu" else self.device,
            WorkerVar.METRICS_FLUSH_S: (
                None if self.metrics_flush_s == DEFAULT_METRICS_FLUSH_S else self.metrics_flush_s
            ),
            WorkerVar.DATA_ROOT: self.data_root,
        }
        return {str(name): str(value) for name, value in values.items() if value is not None}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> WorkerEnv:
        """Read and check ``environ`` (default ``os.environ``); raise ``WorkerEnvError`` naming
        every problem."""
        return read_env(environ)


def _int(env: Mapping[str, str], key: WorkerVar, problems: list[str], *, minimum: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        problems.append(f"{key} is not set (torchrun and distbench set it for each worker)")
        return minimum
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{key}={raw!r} is not an integer")
        return minimum
    if value < minimum:
        problems.append(f"{key}={value} must be >= {minimum}")
    return value


def read_env(environ: Mapping[str, str] | None = None) -> WorkerEnv:
    """Read and check the environment; raise ``WorkerEnvError`` naming every problem."""
    env = os.environ if environ is None else environ
    var = WorkerVar
    problems: list[str] = []
    rank = _int(env, var.RANK, problems, minimum=0)
    world_size = _int(env, var.WORLD_SIZE, problems, minimum=1)
    local_rank = _int(env, var.LOCAL_RANK, problems, minimum=0) if var.LOCAL_RANK in env else rank
    master_port = _int(env, var.MASTER_PORT, problems, minimum=1)
    if not 1 <= master_port <= 65535:
        problems.append(f"{var.MASTER_PORT}={master_port} is not a TCP port (1-65535)")
    master_addr = env.get(var.MASTER_ADDR, "")
    if not master_addr:
        problems.append(f"{var.MASTER_ADDR} is not set (the address of rank 0)")
    if not problems and rank >= world_size:
        problems.append(f"{var.RANK}={rank} must be smaller than {var.WORLD_SIZE}={world_size}")

    run_id = None
    if env.get(var.RUN_ID):
        run_id = _int(env, var.RUN_ID, problems, minimum=1)
    options: dict[str, Any] = {}
    raw_options = env.get(var.OPTIONS, "")
    if raw_options:
        try:
            parsed = json.loads(raw_options)
        except json.JSONDecodeError as exc:
            problems.append(f"{var.OPTIONS} is not JSON: {exc}")
        else:
            if isinstance(parsed, dict):
                options = parsed
            else:
                problems.append(f"{var.OPTIONS} must be a JSON object")
    num_cpus = None
    if env.get(var.NUM_CPUS):
        try:
            num_cpus = float(env[var.NUM_CPUS])
        except ValueError:
            problems.append(f"{var.NUM_CPUS}={env[var.NUM_CPUS]!r} is not a number")
    metrics_flush_s = DEFAULT_METRICS_FLUSH_S
    raw_flush = env.get(var.METRICS_FLUSH_S, "")
    if raw_flush:
        try:
            metrics_flush_s = float(raw_flush)
        except ValueError:
            metrics_flush_s = math.nan
        if not 0 <= metrics_flush_s < math.inf:  # (NaN fails every comparison)
            problems.append(f"{var.METRICS_FLUSH_S}={raw_flush!r} is not seconds >= 0")
    server_url = env.get(var.SERVER_URL) or None
    if server_url is not None and not server_url.startswith(("http://", "https://")):
        problems.append(f"{var.SERVER_URL}={server_url!r} is not an http(s) URL")
    if server_url is not None and run_id is None:
        problems.append(f"{var.RUN_ID} is not set, but {var.SERVER_URL} is")
    if problems:
        raise WorkerEnvError("; ".join(problems))
    device = env.get(var.DEVICE, "cpu")
    if device not in DEVICES:
        raise WorkerEnvError(f"{var.DEVICE}={device!r} must be cpu or cuda")
    status_dir = env.get(var.STATUS_DIR)
    data_root = env.get(var.DATA_ROOT)
    return WorkerEnv(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        master_addr=master_addr,
        master_port=master_port,
        dist_backend=env.get(var.DIST_BACKEND, "gloo"),
        run_id=run_id,
        pod_name=env.get(var.POD_NAME, f"rank-{rank}"),
        server_url=server_url,
        server_socket=env.get(var.SERVER_SOCKET) or None,
        token=env.get(var.TOKEN) or None,
        benchmark=env.get(var.BENCHMARK, DEFAULT_BENCHMARK),
        options=options,
        num_cpus=num_cpus,
        status_dir=Path(status_dir) if status_dir else None,
        device=device,
        metrics_flush_s=metrics_flush_s,
        data_root=Path(data_root) if data_root else None,
    )
