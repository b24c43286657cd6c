"""Joining the run's process group: what every worker does before touching any data, whether
it runs a built-in task (``runtime``) or a script of one's own (``session.init``)."""

from __future__ import annotations

import datetime as dt
import logging
import math

from distbench.worker.env import WorkerEnv

log = logging.getLogger("distbench.worker")

# Long enough for a slow peer to import torch; a dead peer is caught by the orchestrator well
# before this (it stops the survivors as soon as one rank exits non-zero).
PROCESS_GROUP_TIMEOUT = dt.timedelta(minutes=5)


def join_process_group(env: WorkerEnv) -> None:
    """Join the process group ``env`` describes, with torch's threads held to the run's CPUs
    and the rank's GPU selected on GPU runs.

    Torch is imported here, not at the top: the server imports this package without torch."""
    import torch
    import torch.distributed as dist

    # Imported before the group exists, not later by the first optimizer (through
    # torch._dynamo): fsdp's sharded_grad_scaler keeps ``dist.group.WORLD`` as a default
    # argument, so the group would outlive destroy_process_group, and a gloo thread still
    # releasing a finished collective at interpreter shutdown aborts the process (SIGABRT).
    import torch.distributed.fsdp

    if env.num_cpus is not None:
        torch.set_num_threads(max(1, math.ceil(env.num_cpus)))
    if env.device == "cuda":
        # distbench gives each rank one GPU through CUDA_VISIBLE_DEVICES: device 0. Plain
        # torchrun on a machine with several leaves them all visible: the local rank's.
        torch.cuda.set_device(env.local_rank if torch.cuda.device_count() > 1 else 0)
    log.info(
        "rank %d/%d joining %s process group at %s:%d",
        env.rank,
        env.world_size,
        env.dist_backend,
        env.master_addr,
        env.master_port,
    )
    # The address from ``env``, not os.environ (env://): what was read and checked is used.
    host = f"[{env.master_addr}]" if ":" in env.master_addr else env.master_addr
    dist.init_process_group(
        backend=env.dist_backend,
        init_method=f"tcp://{host}:{env.master_port}",
        rank=env.rank,
        world_size=env.world_size,
        timeout=PROCESS_GROUP_TIMEOUT,
    )
