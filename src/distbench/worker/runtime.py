"""A worker's life when it runs a built-in or plugin task (``python -m distbench.worker``):
check the environment, join the process group, run the task, report, exit with a status the
backend can read even after a server restart.

This module sits above the tasks (it imports ``distbench.benchmarks``), which sit above the
session API they are given; nothing below imports it, so there is no import circle."""

from __future__ import annotations

import json
import logging
import sys
import traceback

from distbench import benchmarks
from distbench.benchmarks.base import TaskContext
from distbench.worker.env import WorkerEnv, WorkerEnvError, read_env
from distbench.worker.process_group import join_process_group
from distbench.worker.reporter import BatchReporter, NullReporter, Reporter, make_reporter
from distbench.worker.shutdown import StopGuard
from distbench.worker.status import StatusFiles

log = logging.getLogger("distbench.worker")


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


def _run(env: WorkerEnv, status: StatusFiles, reporter: Reporter) -> int:
    # Torch only once the environment passed its check: a bad one fails fast, without it.
    import torch.distributed as dist

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
