"""The worker's environment: torchrun's variables plus distbench's, read and checked in one place
so that a misconfigured worker says precisely what is wrong and exits, instead of hanging."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A run that ends while its server restarts still delivers every metric point.
DEFAULT_METRICS_FLUSH_S = 300.0


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
    benchmark: str = "digits"
    options: Mapping[str, Any] = field(default_factory=dict)
    num_cpus: float | None = None
    status_dir: Path | None = None
    device: str = "cpu"
    # How long a worker waits at its end for the server to take its last metrics.
    metrics_flush_s: float = DEFAULT_METRICS_FLUSH_S
    # Set by the server: a task's path options must lie under it (checked again here).
    data_root: Path | None = None


def _int(env: Mapping[str, str], key: str, problems: list[str], *, minimum: int) -> int:
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
    problems: list[str] = []
    rank = _int(env, "RANK", problems, minimum=0)
    world_size = _int(env, "WORLD_SIZE", problems, minimum=1)
    local_rank = _int(env, "LOCAL_RANK", problems, minimum=0) if "LOCAL_RANK" in env else rank
    master_port = _int(env, "MASTER_PORT", problems, minimum=1)
    if not 1 <= master_port <= 65535:
        problems.append(f"MASTER_PORT={master_port} is not a TCP port (1-65535)")
    master_addr = env.get("MASTER_ADDR", "")
    if not master_addr:
        problems.append("MASTER_ADDR is not set (the address of rank 0)")
    if not problems and rank >= world_size:
        problems.append(f"RANK={rank} must be smaller than WORLD_SIZE={world_size}")

    run_id = None
    if env.get("DISTBENCH_RUN_ID"):
        run_id = _int(env, "DISTBENCH_RUN_ID", problems, minimum=1)
    options: dict[str, Any] = {}
    raw_options = env.get("DISTBENCH_OPTIONS", "")
    if raw_options:
        try:
            parsed = json.loads(raw_options)
        except json.JSONDecodeError as exc:
            problems.append(f"DISTBENCH_OPTIONS is not JSON: {exc}")
        else:
            if isinstance(parsed, dict):
                options = parsed
            else:
                problems.append("DISTBENCH_OPTIONS must be a JSON object")
    num_cpus = None
    if env.get("DISTBENCH_NUM_CPUS"):
        try:
            num_cpus = float(env["DISTBENCH_NUM_CPUS"])
        except ValueError:
            problems.append(f"DISTBENCH_NUM_CPUS={env['DISTBENCH_NUM_CPUS']!r} is not a number")
    metrics_flush_s = DEFAULT_METRICS_FLUSH_S
    raw_flush = env.get("DISTBENCH_METRICS_FLUSH_S", "")
    if raw_flush:
        try:
            metrics_flush_s = float(raw_flush)
        except ValueError:
            metrics_flush_s = math.nan
        if not 0 <= metrics_flush_s < math.inf:  # (NaN fails every comparison)
            problems.append(f"DISTBENCH_METRICS_FLUSH_S={raw_flush!r} is not seconds >= 0")
    server_url = env.get("DISTBENCH_SERVER_URL") or None
    if server_url is not None and not server_url.startswith(("http://", "https://")):
        problems.append(f"DISTBENCH_SERVER_URL={server_url!r} is not an http(s) URL")
    if server_url is not None and run_id is None:
        problems.append("DISTBENCH_RUN_ID is not set, but DISTBENCH_SERVER_URL is")
    if problems:
        raise WorkerEnvError("; ".join(problems))
    device = env.get("DISTBENCH_DEVICE", "cpu")
    if device not in ("cpu", "cuda"):
        raise WorkerEnvError(f"DISTBENCH_DEVICE={device!r} must be cpu or cuda")
    status_dir = env.get("DISTBENCH_STATUS_DIR")
    data_root = env.get("DISTBENCH_DATA_ROOT")
    return WorkerEnv(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        master_addr=master_addr,
        master_port=master_port,
        dist_backend=env.get("DISTBENCH_DIST_BACKEND", "gloo"),
        run_id=run_id,
        pod_name=env.get("DISTBENCH_POD_NAME", f"rank-{rank}"),
        server_url=server_url,
        server_socket=env.get("DISTBENCH_SERVER_SOCKET") or None,
        token=env.get("DISTBENCH_TOKEN") or None,
        benchmark=env.get("DISTBENCH_BENCHMARK", "digits"),
        options=options,
        num_cpus=num_cpus,
        status_dir=Path(status_dir) if status_dir else None,
        device=device,
        metrics_flush_s=metrics_flush_s,
        data_root=Path(data_root) if data_root else None,
    )
