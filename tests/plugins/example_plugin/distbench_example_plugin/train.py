"""The task itself, run in every worker with a ``TaskContext``: the same clock, timers, metric
reporting and helpers as distbench's own tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from sklearn.datasets import make_blobs
from torch import nn

from distbench.benchmarks import TaskContext
from distbench.benchmarks.collectives import share_weights, synchronous_step
from distbench.benchmarks.epochs import EpochCounts, check_target, close_epoch, task_result
from distbench_example_plugin.spec import BlobsOptions


def run(ctx: TaskContext) -> Mapping[str, Any]:
    options: BlobsOptions = ctx.options
    rank, world = ctx.env.rank, ctx.env.world_size
    torch.manual_seed(options.seed)
    x, y = make_blobs(
        n_samples=options.samples,
        n_features=options.features,
        centers=options.classes,
        cluster_std=4.0,
        random_state=options.seed,
    )
    features = torch.tensor(x, dtype=torch.float32)
    labels = torch.tensor(y, dtype=torch.long)
    split = len(labels) * 4 // 5
    # Each rank trains on its own equal share and validates on its own slice.
    train = torch.arange(split - split % world)[rank::world]
    val = torch.arange(split, len(labels))[rank::world]
    model = nn.Linear(options.features, options.classes)
    share_weights(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=options.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    reached_at, val_accuracy, epoch = None, 0.0, 0
    for epoch in range(1, options.max_epochs + 1):
        ctx.timers.reset()
        started = ctx.elapsed_s()
        loss_sum = correct = 0.0
        for batch in train[torch.randperm(len(train))].split(options.batch_size):
            with synchronous_step(ctx, model, optimizer):
                logits = model(features[batch])
                loss = loss_fn(logits, labels[batch])
                loss.backward()
            loss_sum += loss.item() * len(batch)
            correct += float((logits.argmax(1) == labels[batch]).sum())
        validation_started = ctx.elapsed_s()
        with torch.no_grad():
            logits = model(features[val])
            val_loss = float(loss_fn(logits, labels[val])) * len(val)
            val_correct = float((logits.argmax(1) == labels[val]).sum())
        counts = EpochCounts(loss_sum, correct, len(train), val_loss, val_correct, len(val))
        val_accuracy = close_epoch(
            ctx,
            epoch,
            counts,
            train_time_s=validation_started - started,
            validation_started=validation_started,
            device=torch.device("cpu"),
        )
        reached_at = check_target(ctx, epoch, val_accuracy, options.target_accuracy)
        if reached_at is not None:
            break
    return task_result(options.target_accuracy, reached_at, epoch, val_accuracy)
