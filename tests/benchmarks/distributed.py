"""Run a task's function in real worker processes (gloo on CPU on a free port) without a server,
and return what rank 0 reported, in order: the task's own code, all-reduces included."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port

TIMEOUT_S = 120

# Workers are forked from a forkserver that imported torch and the tasks once, as the local
# backend's warm launcher does: a fresh interpreter costs seconds of CPU per worker and run. The
# forkserver is single-threaded and computes nothing, so each worker still starts clean.
PRELOAD = [
    "torch",
    "torch.distributed",
    # The first optimizer built imports torch._dynamo: seconds, paid once here instead.
    "torch._dynamo",
    "sklearn.datasets",
    "distbench.benchmarks.digits",
    "distbench.benchmarks.logreg",
    "tests.benchmarks.distributed",
]


@dataclass(frozen=True)
class Point:
    name: str
    value: float
    metadata: str


class RecordingReporter:
    """A reporter that keeps every point in memory (the worker's reporter protocol)."""

    def __init__(self) -> None:
        self.points: list[Point] = []

    def report(
        self, name: str, value: float, *, cumulative: bool = False, metadata: str = ""
    ) -> None:
        self.points.append(Point(name, float(value), metadata))

    def close(self, timeout_s: float = 30.0) -> None:
        return None


def _worker(
    rank: int, world_size: int, port: int, benchmark: str, options: dict[str, Any], out: str
) -> None:
    import torch
    import torch.distributed as dist

    from distbench import benchmarks
    from distbench.benchmarks.base import TaskContext
    from distbench.worker.env import WorkerEnv

    # One thread a worker, as a run with num_cpus=1 has.
    torch.set_num_threads(1)
    spec = benchmarks.get(benchmark)
    env = WorkerEnv(
        rank=rank,
        world_size=world_size,
        local_rank=rank,
        master_addr="127.0.0.1",
        master_port=port,
        benchmark=benchmark,
        options=options,
    )
    reporter = RecordingReporter()
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        context = TaskContext(
            env=env, reporter=reporter, options=spec.options.model_validate(options)
        )
        result = dict(spec.load()(context))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    points = [p.__dict__ for p in reporter.points]
    Path(out).write_text(json.dumps({"result": result, "points": points}))


@dataclass
class TaskRun:
    result: dict[str, Any]
    points: list[Point]

    def series(self, name: str) -> list[float]:
        return [p.value for p in self.points if p.name == name]


def start_processes(
    target: Callable[..., None], arguments: list[tuple[Any, ...]], preload: list[str]
) -> list[Any]:
    """One process per ``arguments`` entry, forked from a server that imported ``preload``
    (torch once, not once per rank), started."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    processes = [context.Process(target=target, args=args, daemon=True) for args in arguments]
    for process in processes:
        process.start()
    return processes


def finish(processes: list[Any], timeout_s: float = TIMEOUT_S) -> list[int | None]:
    """Each process's exit code, killing any still running after ``timeout_s``."""
    try:
        for process in processes:
            process.join(timeout_s)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    return [process.exitcode for process in processes]


def run_task(
    benchmark: str, options: dict[str, Any], *, world_size: int, tmp_path: Path
) -> TaskRun:
    """Run ``benchmark`` in ``world_size`` fresh processes; rank 0's points and result."""
    port = free_port()
    outputs = [tmp_path / f"{benchmark}-{port}-rank{rank}.json" for rank in range(world_size)]
    arguments = [
        (rank, world_size, port, benchmark, options, str(outputs[rank]))
        for rank in range(world_size)
    ]
    codes = finish(start_processes(_worker, arguments, PRELOAD))
    assert codes == [0] * world_size, f"workers exited {codes}"
    rank0 = json.loads(outputs[0].read_text())
    return TaskRun(result=rank0["result"], points=[Point(**p) for p in rank0["points"]])
