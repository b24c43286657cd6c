"""``resnet20-cifar10`` (MLBench task 1a): ResNet-20 on CIFAR-10, data-parallel synchronous SGD.

ResNet-20 as He et al. built it for CIFAR (three stages of three basic blocks, 16/32/64
channels, parameter-free shortcuts; 0.27 M parameters). SGD with momentum and weight decay,
128 images per worker, the rate scaled with the number of workers after a linear warm-up and
divided by ten at half and three quarters of the epochs. Gradients are averaged with one flat
all-reduce per step, timed as communication.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from distbench.benchmarks import cifar10
from distbench.benchmarks.base import TaskContext
from distbench.benchmarks.collectives import share_weights, synchronous_step
from distbench.benchmarks.epochs import EpochCounts, check_target, close_epoch, task_result
from distbench.benchmarks.resnet20_options import Resnet20Options


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.stride = stride
        self.pad = channels_out - channels_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.pad:
            # "Option A": subsample and pad with zero channels, no parameters.
            shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + shortcut)


class ResNet20(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        channels = 16
        for stage, width in enumerate((16, 32, 64)):
            for block in range(3):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        logits: torch.Tensor = self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
        return logits


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 32x32 crops of the 4-pixel zero-padded images, half of them mirrored."""
    count = images.shape[0]
    padded = F.pad(images, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (count, 2), generator=generator).tolist()
    cropped = torch.stack(
        [padded[i, :, y : y + 32, x : x + 32] for i, (x, y) in enumerate(offsets)]
    )
    flip = torch.rand(count, generator=generator) < 0.5
    cropped[flip] = cropped[flip].flip(3)
    return cropped


def learning_rate(options: Resnet20Options, world_size: int, epoch_progress: float) -> float:
    """The rate at a point in training (``epoch_progress`` counts epochs from 0, fractional):
    warm-up from the per-worker rate to the scaled one, then /10 at 50 % and 75 % of training."""
    scaled = options.learning_rate * world_size
    if options.warmup_epochs and epoch_progress < options.warmup_epochs:
        share = epoch_progress / options.warmup_epochs
        return options.learning_rate + (scaled - options.learning_rate) * share
    if epoch_progress >= 0.75 * options.max_epochs:
        return scaled / 100
    if epoch_progress >= 0.5 * options.max_epochs:
        return scaled / 10
    return scaled


def _data(
    options: Resnet20Options,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if options.dataset == "synthetic":
        train_x, train_y = cifar10.synthetic(options.synthetic_samples, options.seed)
        val_x, val_y = cifar10.synthetic(max(10, options.synthetic_samples // 5), options.seed + 1)
        return train_x, train_y, val_x, val_y
    # Resolved under the data root before the run started (``paths.confine``).
    root = Path(options.data_dir)
    return cifar10.load(cifar10.locate(root, allow_download=options.download))


def run(ctx: TaskContext) -> Mapping[str, Any]:
    options: Resnet20Options = ctx.options
    rank, world = ctx.env.rank, ctx.env.world_size
    torch.manual_seed(options.seed)
    train_x, train_y, val_x, val_y = _data(options)
    device = ctx.device
    # The data stays in host memory (CIFAR-10 is 600 MB as floats); batches travel to the device.
    model = ResNet20().to(device)
    share_weights(model)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=options.learning_rate,
        momentum=options.momentum,
        weight_decay=options.weight_decay,
    )
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = math.ceil((len(train_y) // world) / options.batch_size)
    if options.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, options.max_steps_per_epoch)
    val_shard = slice(rank, None, world)
    reached_at: float | None = None
    val_accuracy = 0.0
    epoch = step = 0
    for epoch in range(1, options.max_epochs + 1):
        ctx.timers.reset()
        generator = torch.Generator().manual_seed(options.seed * 1000 + epoch)
        order = torch.randperm(len(train_y), generator=generator)
        # Equal shares, so every rank takes the same steps (and all-reduces) each epoch.
        order = order[: len(order) - len(order) % world][rank::world]
        loss_sum = correct = seen = 0.0
        epoch_started = ctx.elapsed_s()
        model.train()
        for index in range(steps_per_epoch):
            batch = order[index * options.batch_size : (index + 1) * options.batch_size]
            if len(batch) == 0:
                break
            rate = learning_rate(options, world, epoch - 1 + index / steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = rate
            with synchronous_step(ctx, model, optimizer):
                images = augment(train_x[batch], generator).to(device, non_blocking=True)
                labels = train_y[batch].to(device, non_blocking=True)
                logits = model(images)
                loss = loss_fn(logits, labels)
                loss.backward()
            loss_sum += loss.item() * len(batch)
            correct += float((logits.argmax(1) == labels).sum())
            seen += len(batch)
            step += 1
            if step % options.report_every_steps == 0:
                ctx.report(
                    "batch_loss", loss.item(), metadata=f'{{"epoch": {epoch}, "step": {step}}}'
                )
        train_time_s = ctx.elapsed_s() - epoch_started
        validation_started = ctx.elapsed_s()
        model.eval()
        val_loss = val_correct = 0.0
        shard_x, shard_y = val_x[val_shard], val_y[val_shard]
        with torch.no_grad():
            for start in range(0, len(shard_y), 500):
                logits = model(shard_x[start : start + 500].to(device))
                labels = shard_y[start : start + 500].to(device)
                val_loss += float(loss_fn(logits, labels)) * len(labels)
                val_correct += float((logits.argmax(1) == labels).sum())
        val_accuracy = close_epoch(
            ctx,
            epoch,
            EpochCounts(loss_sum, correct, seen, val_loss, val_correct, float(len(shard_y))),
            train_time_s=train_time_s,
            validation_started=validation_started,
            device=device,
        )
        ctx.report("learning_rate", rate, metadata=f'{{"epoch": {epoch}}}')
        if options.dataset != "synthetic":  # random images have no accuracy to reach
            reached_at = check_target(ctx, epoch, val_accuracy, options.target_accuracy)
            if reached_at is not None:
                break
    return task_result(options.target_accuracy, reached_at, epoch, val_accuracy)
