"""``allreduce`` (MLBench's task 0): all-reduce time and bus bandwidth by message size.

Bus bandwidth follows nccl-tests: algorithm bandwidth (bytes / time) times 2(n-1)/n, the share
of the data each rank must send in a ring all-reduce, so it can be compared with the link's
capacity (and with ``max_bandwidth``) whatever the number of workers.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from distbench.benchmarks.allreduce_options import AllreduceOptions
from distbench.benchmarks.base import TaskContext


def bus_bandwidth_mbit(size_bytes: int, seconds: float, world_size: int) -> float | None:
    """nccl-tests' bus bandwidth: what each link carried. One worker's all-reduce moves nothing
    between workers, so it has none (its time is only a local copy's)."""
    if world_size < 2:
        return None
    return size_bytes * 8 / 1e6 / seconds * 2 * (world_size - 1) / world_size


def run(ctx: TaskContext) -> Mapping[str, Any]:
    options: AllreduceOptions = ctx.options
    world = ctx.env.world_size
    device = ctx.device
    dtype_name = options.dtype
    if dtype_name == "auto":  # MLBench measured fp16 on GPUs, fp32 on CPUs
        dtype_name = "float16" if device.type == "cuda" else "float32"
    dtype = torch.float16 if dtype_name == "float16" else torch.float32
    element = torch.tensor([], dtype=dtype).element_size()
    results = []
    for size in options.sizes_bytes:
        tensor = torch.ones(max(1, size // element), dtype=dtype, device=device)
        for _ in range(options.warmup):
            dist.all_reduce(tensor)
        times = []
        for _ in range(options.repetitions):
            dist.barrier()
            started = time.perf_counter()
            with ctx.timers.communication():
                dist.all_reduce(tensor)
                if device.type == "cuda":
                    torch.cuda.synchronize()  # nccl returns once queued, not once done
            times.append(time.perf_counter() - started)
        # The slowest rank decides when an all-reduce is over; take each repetition's max.
        timings = torch.tensor(times, dtype=torch.float64, device=device)
        dist.all_reduce(timings, op=dist.ReduceOp.MAX)
        median_s = statistics.median(timings.tolist())
        bus = bus_bandwidth_mbit(tensor.numel() * element, median_s, world)
        meta = json.dumps({"bytes": tensor.numel() * element, "dtype": dtype_name})
        ctx.report("allreduce_time_s", median_s, metadata=meta)
        if bus is not None:
            ctx.report("bus_bandwidth_mbit", bus, metadata=meta)
        results.append({"bytes": tensor.numel() * element, "time_s": median_s, "bus_mbit": bus})
    largest = results[-1]
    return {"sizes": len(results), "largest_bus_bandwidth_mbit": largest["bus_mbit"]}
