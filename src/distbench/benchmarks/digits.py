"""``digits``: data-parallel synchronous SGD of an MLP on scikit-learn's 8x8 digits.

Gradients are averaged with one flat all-reduce per step, timed as communication; forward,
backward and the optimizer step are timed as compute (MLBench's split). The data is split by
rank and reshuffled every epoch from the seed, so the same seed and worker count give the same
loss curve.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from sklearn.datasets import load_digits
from torch import nn

from distbench.benchmarks.base import TaskContext
from distbench.benchmarks.collectives import share_weights, synchronous_step
from distbench.benchmarks.digits_options import DigitsOptions
from distbench.benchmarks.epochs import EpochCounts, check_target, close_epoch, task_result


def _dataset(
    options: DigitsOptions,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    digits = load_digits()
    features = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(options.seed))
    validation_size = int(len(labels) * options.validation_fraction)
    val, train = order[:validation_size], order[validation_size:]
    return features[train], labels[train], features[val], labels[val]


def run(ctx: TaskContext) -> Mapping[str, Any]:
    options: DigitsOptions = ctx.options
    rank, world = ctx.env.rank, ctx.env.world_size
    torch.manual_seed(options.seed)
    device = ctx.device
    # Small enough to live on the device whole (a GPU run moves it there once).
    train_x, train_y, val_x, val_y = (t.to(device) for t in _dataset(options))
    model = nn.Sequential(nn.Linear(64, options.hidden), nn.ReLU(), nn.Linear(options.hidden, 10))
    model = model.to(device)
    share_weights(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=options.learning_rate, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    val_shard = slice(rank, None, world)
    reached_at: float | None = None
    val_accuracy = 0.0
    epoch = step = 0
    for epoch in range(1, options.max_epochs + 1):
        ctx.timers.reset()
        order = torch.randperm(
            len(train_y), generator=torch.Generator().manual_seed(options.seed * 1000 + epoch)
        )
        # Equal shares: ranks that took different numbers of steps would wait on each other's
        # all-reduces forever (or die when one rank finishes first).
        order = order[: len(order) - len(order) % world][rank::world].to(device)
        loss_sum = correct = seen = 0.0
        epoch_started = ctx.elapsed_s()
        model.train()
        for start in range(0, len(order), options.batch_size):
            batch = order[start : start + options.batch_size]
            with synchronous_step(ctx, model, optimizer):
                logits = model(train_x[batch])
                loss = loss_fn(logits, train_y[batch])
                loss.backward()
            loss_sum += loss.item() * len(batch)
            step += 1
            if step % options.report_every_steps == 0:
                ctx.report(
                    "batch_loss", loss.item(), metadata=f'{{"epoch": {epoch}, "step": {step}}}'
                )
            correct += float((logits.argmax(1) == train_y[batch]).sum())
            seen += len(batch)
        train_time_s = ctx.elapsed_s() - epoch_started
        validation_started = ctx.elapsed_s()
        model.eval()
        with torch.no_grad():
            logits = model(val_x[val_shard])
            val_loss = float(
                loss_fn(
                    logits,
                    val_y[val_shard],
                )
            ) * len(val_y[val_shard])
            val_correct = float((logits.argmax(1) == val_y[val_shard]).sum())
        val_accuracy = close_epoch(
            ctx,
            epoch,
            EpochCounts(
                loss_sum, correct, seen, val_loss, val_correct, float(len(val_y[val_shard]))
            ),
            train_time_s=train_time_s,
            validation_started=validation_started,
            device=device,
        )
        reached_at = check_target(ctx, epoch, val_accuracy, options.target_accuracy)
        if reached_at is not None:
            break
    return task_result(options.target_accuracy, reached_at, epoch, val_accuracy)
