"""One worker of ``bench/overhead.py``, started by torchrun. Trains ResNet-20 on synthetic
CIFAR-shaped images either as a plain DDP script or as distbench's task (reporting on or off),
and prints the samples/s it measured as one JSON line from rank 0.

    torchrun --nproc-per-node 2 bench/overhead_worker.py plain|task-quiet|task-reporting ...
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from distbench.benchmarks import cifar10
from distbench.benchmarks.base import TaskContext
from distbench.benchmarks.resnet20 import ResNet20, augment, run
from distbench.benchmarks.resnet20_options import Resnet20Options
from distbench.worker.env import read_env
from distbench.worker.reporter import BatchReporter, NullReporter, Reporter, http_client


def plain_ddp(args: argparse.Namespace) -> float:
    """The reference: the same model, data and batch, as a plain torch.distributed script."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)
    images, labels = cifar10.synthetic(args.samples, args.seed)
    model = DistributedDataParallel(ResNet20())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(labels), generator=generator)[rank::world]
    started = 0.0
    seen = 0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            dist.barrier()
            started = time.perf_counter()
        batch = order[(step * args.batch) % len(order) :][: args.batch]
        optimizer.zero_grad()
        loss = loss_fn(model(augment(images[batch], generator)), labels[batch])
        loss.backward()
        optimizer.step()
        if step >= args.warmup:
            seen += len(batch)
    dist.barrier()
    return seen * world / (time.perf_counter() - started)


class Recording:
    """Keeps what the task reports (to read its samples/s) and passes it on."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.points: list[tuple[str, float]] = []

    def report(
        self, name: str, value: float, *, cumulative: bool = False, metadata: str = ""
    ) -> None:
        self.points.append((name, value))
        self.inner.report(name, value, cumulative=cumulative, metadata=metadata)

    def close(self, timeout_s: float = 30.0) -> None:
        self.inner.close(timeout_s)


def distbench_task(args: argparse.Namespace, reporting: bool) -> float:
    """distbench's resnet20 task in this process; its samples/s of the epochs after the first."""
    env = read_env()
    inner: Reporter = NullReporter()
    if reporting:
        http = http_client(server_url=args.server_url, server_socket=None, token=None)
        inner = BatchReporter(run_id=args.run_id, http=http)
    reporter = Recording(inner)
    options = Resnet20Options(
        dataset="synthetic",
        synthetic_samples=args.samples,
        batch_size=args.batch,
        max_epochs=args.epochs,
        max_steps_per_epoch=args.steps,
        report_every_steps=1,  # the most reporting a task does: a point every step
        seed=args.seed,
    )
    run(TaskContext(env=env, reporter=reporter, options=options))
    reporter.close()
    # Only rank 0 reports (each series has one writer); the others return nothing to print.
    rates = [value for name, value in reporter.points if name == "samples_per_s"][1:]
    return sum(rates) / len(rates) if rates else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["plain", "task-quiet", "task-reporting"])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--server-url", default="")
    parser.add_argument("--run-id", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        if args.mode == "plain":
            rate = plain_ddp(args)
        else:
            rate = distbench_task(args, reporting=args.mode == "task-reporting")
    finally:
        dist.destroy_process_group()
    if int(os.environ["RANK"]) == 0:
        result: dict[str, Any] = {"mode": args.mode, "samples_per_s": rate}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
