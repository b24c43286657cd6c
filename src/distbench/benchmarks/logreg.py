"""``logreg`` (MLBench's task 2a): L2-regularised logistic regression, data-parallel SGD.

Data is a LIBSVM-format file (epsilon: 400k dense rows of 2000 features, labels -1/+1), read
with scikit-learn's reader, or a synthetic set of the same shape family generated from the seed.
As in ``digits``, gradients are averaged with one flat all-reduce per step, timed as
communication; forward, backward and the optimizer step are timed as compute. The step size is
``learning_rate * min(16, workers)``, MLBench's scaling. The data is split by rank and reshuffled
every epoch from the seed, so the same seed and worker count give the same loss curve.

The model is ``w.x`` (epsilon's usual formulation), with an unregularised intercept only when
``bias`` is set: on unit-norm rows the margins start tiny, and the noise of the intercept's
steps at MLBench's step sizes flips many predictions at once, so the validation accuracy of the
model with an intercept jumps by tens of points between epochs.

The L2 penalty ``l2/2 * |w|^2`` is part of the optimised objective; the reported losses are the
logistic loss alone, so they compare across ``l2`` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from distbench.benchmarks.base import TaskContext
from distbench.benchmarks.collectives import share_weights, synchronous_step
from distbench.benchmarks.epochs import EpochCounts, check_target, close_epoch, task_result
from distbench.benchmarks.libsvm import LibsvmError, load_files
from distbench.benchmarks.logreg_options import LogregOptions

Dataset = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _binary_labels(raw: np.ndarray[Any, Any], path: str) -> torch.Tensor:
    """LIBSVM labels -1/+1 (epsilon) or 0/1 as 0./1. targets; anything else is an error."""
    values = set(np.unique(raw).tolist())
    if values <= {-1.0, 1.0}:
        return torch.tensor(raw > 0, dtype=torch.float32)
    if values <= {0.0, 1.0}:
        return torch.tensor(raw, dtype=torch.float32)
    # The values themselves are not shown: nothing a file holds reaches the run's logs.
    raise LibsvmError(
        f"{path}: labels must be -1/+1 or 0/1 for binary classification; the file has "
        f"{len(values)} distinct labels"
    )


def _held_out(features: torch.Tensor, labels: torch.Tensor, options: LogregOptions) -> Dataset:
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(options.seed))
    validation_size = max(1, int(len(labels) * options.validation_fraction))
    val, train = order[:validation_size], order[validation_size:]
    return features[train], labels[train], features[val], labels[val]


def load_libsvm(data_path: str, options: LogregOptions) -> Dataset:
    """Train and validation tensors from LIBSVM files, dense float32 (epsilon is dense)."""
    paths = [data_path]
    if options.validation_path is not None:
        paths.append(options.validation_path)
    # One call so both files get the same number of features (the widest file's).
    loaded = load_files(paths)
    matrices, targets = loaded[0::2], loaded[1::2]
    tensors = [torch.from_numpy(m.toarray()) for m in matrices]
    labels = [_binary_labels(t, p) for t, p in zip(targets, paths, strict=True)]
    if options.validation_path is None:
        return _held_out(tensors[0], labels[0], options)
    return tensors[0], labels[0], tensors[1], labels[1]


def synthetic(options: LogregOptions) -> Dataset:
    """Epsilon's shape family: unit-norm dense rows, labels from a seeded linear separator with a
    share of them flipped, so the best reachable accuracy is about ``1 - synthetic_label_noise``."""
    generator = torch.Generator().manual_seed(options.seed)
    samples, features = options.synthetic_samples, options.synthetic_features
    separator = torch.randn(features, generator=generator)
    data = torch.randn(samples, features, generator=generator)
    data /= data.norm(dim=1, keepdim=True).clamp_min(1e-12)
    labels = (data @ separator > 0).to(torch.float32)
    flipped = torch.rand(samples, generator=generator) < options.synthetic_label_noise
    labels[flipped] = 1.0 - labels[flipped]
    return _held_out(data, labels, options)


def run(ctx: TaskContext) -> Mapping[str, Any]:
    options: LogregOptions = ctx.options
    rank, world = ctx.env.rank, ctx.env.world_size
    torch.manual_seed(options.seed)
    if options.data_path is None:
        train_x, train_y, val_x, val_y = synthetic(options)
    else:
        train_x, train_y, val_x, val_y = load_libsvm(options.data_path, options)
    device = ctx.device
    train_x, train_y, val_x, val_y = (t.to(device) for t in (train_x, train_y, val_x, val_y))
    if len(train_y) < world:
        raise ValueError(f"{len(train_y)} training samples cannot be split over {world} workers")
    model = nn.Linear(train_x.shape[1], 1, bias=options.bias).to(device)
    share_weights(model)
    step_size = options.learning_rate * min(16, world)
    optimizer = torch.optim.SGD(model.parameters(), lr=step_size)
    val_shard = slice(rank, None, world)
    # Equal shards, so every rank takes the same number of steps (and of all-reduces).
    shard_size = len(train_y) // world
    reached_at: float | None = None
    val_accuracy = 0.0
    epoch = step = 0
    for epoch in range(1, options.max_epochs + 1):
        ctx.timers.reset()
        order = torch.randperm(
            len(train_y), generator=torch.Generator().manual_seed(options.seed * 1000 + epoch)
        )[rank::world][:shard_size].to(device)
        loss_sum = correct = seen = 0.0
        epoch_started = ctx.elapsed_s()
        for start in range(0, len(order), options.batch_size):
            batch = order[start : start + options.batch_size]
            targets = train_y[batch]
            with synchronous_step(ctx, model, optimizer):
                logits = model(train_x[batch]).squeeze(1)
                loss = functional.binary_cross_entropy_with_logits(logits, targets)
                objective = loss + 0.5 * options.l2 * model.weight.pow(2).sum()
                torch.autograd.backward(objective)
            loss_sum += loss.item() * len(batch)
            step += 1
            if step % options.report_every_steps == 0:
                ctx.report(
                    "batch_loss", loss.item(), metadata=f'{{"epoch": {epoch}, "step": {step}}}'
                )
            correct += float(((logits > 0) == (targets > 0.5)).sum())
            seen += len(batch)
        train_time_s = ctx.elapsed_s() - epoch_started
        validation_started = ctx.elapsed_s()
        with torch.no_grad():
            shard_x, shard_y = val_x[val_shard], val_y[val_shard]
            logits = model(shard_x).squeeze(1)
            val_loss = float(
                functional.binary_cross_entropy_with_logits(logits, shard_y, reduction="sum")
            )
            val_correct = float(((logits > 0) == (shard_y > 0.5)).sum())
        val_accuracy = close_epoch(
            ctx,
            epoch,
            EpochCounts(loss_sum, correct, seen, val_loss, val_correct, float(len(shard_y))),
            train_time_s=train_time_s,
            validation_started=validation_started,
            device=device,
        )
        reached_at = check_target(ctx, epoch, val_accuracy, options.target_accuracy)
        if reached_at is not None:
            break
    return task_result(options.target_accuracy, reached_at, epoch, val_accuracy)
