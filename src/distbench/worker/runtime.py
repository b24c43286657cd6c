"""A worker's life: check the environment, join the process group, run the task, report, exit
with a status the backend can read even after a server restart."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
import traceback

from distbench.worker.backlog import Backlog
from distbench.worker.env import WorkerEnv, WorkerEnvError, read_env
from distbench.worker.reporter import BatchReporter, NullReporter, Reporter, http_client
from distbench.worker.shutdown import StopGuard
from distbench.worker.status import StatusFiles as StatusFiles

log = logging.getLogger("distbench.worker")

# Long enough for a slow peer to import torch; a dead peer is caught by the orchestrator well
# before this (it stops the survivors as soon as one rank exits non-zero).
PROCESS_GROUP_TIMEOUT = dt.timedelta(minutes=5)


def make_reporter(env: WorkerEnv) -> Reporter:
    if env.server_url is None or env.run_id is None:
        return NullReporter()
    http = http_client(server_url=env.server_url, server_socket=env.server_socket, token=env.token)
    # Points the server cannot take yet wait beside the worker's log (bounded: see Backlog).
    spool = env.status_dir / f"{env.pod_name}.metrics.jsonl" if env.status_dir else None
    return BatchReporter(
        run_id=env.run_id,
        http=http,
        backlog=Backlog(spool_path=spool),
        flush_timeout_s=env.metrics_flush_s,
    )


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s rank %(process)d %(levelname)s %(message)s"
    )
    # One line per metric post would drown the worker's own output.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        env = read_env()
    except WorkerEnvError as exc:
        print(f"distbench worker: bad environment: {exc}", file=sys.stderr)
        return 2
    status = StatusFiles(env.status_dir, env.pod_name)
    guard = StopGuard(status)
    code = 1
    reporter: Reporter = NullReporter()
    try:
        try:
            guard.install()
            reporter = make_reporter(env)
            if isinstance(reporter, BatchReporter):
                guard.on_term(reporter.cut_short)
            code = _run(env, status, reporter)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        # From here on a SIGTERM only cuts the metric flush short (see StopGuard).
        guard.finishing(code)
        reporter.close()
    except BaseException:
        # (A SIGTERM just as the task ended, or the flush failing: the status still follows.)
        traceback.print_exc()
    finally:
        # On every way out: without it the backend takes the worker for killed (SIGKILL).
        status.exited(code)
    return code


def join_process_group(env: WorkerEnv) -> None:
    """Join the process group ``env`` describes, with torch's threads held to the run's CPUs
    and the rank's GPU selected on GPU runs (what a worker does before touching any data)."""
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


def _run(env: WorkerEnv, status: StatusFiles, reporter: Reporter) -> int:
    import torch.distributed as dist

    from distbench import benchmarks
    from distbench.benchmarks.base import TaskContext

    spec = benchmarks.get(env.benchmark)
    # Paths again, in case the options did not come through a server that checked them.
    options = benchmarks.validated_options(spec, env.options, data_root=env.data_root)
    join_process_group(env)
    try:
        status.ready()
        context = TaskContext(env=env, reporter=reporter, options=options)
        result = spec.load()(context)
        log.info("rank %d done: %s", env.rank, json.dumps(dict(result), default=str))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0
