"""The end of a training epoch, the same in every training task: sum what the ranks counted,
report the epoch's metrics, check the target, and the task's final result."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any

from distbench.benchmarks.base import TaskContext
from distbench.benchmarks.collectives import global_sums

if TYPE_CHECKING:
    import torch


@dataclass
class EpochCounts:
    """What one rank counted in one epoch (sums, so ranks' counts add up)."""

    loss_sum: float
    correct: float
    seen: float
    val_loss_sum: float
    val_correct: float
    val_seen: float


def close_epoch(
    ctx: TaskContext,
    epoch: int,
    counts: EpochCounts,
    *,
    train_time_s: float,
    validation_started: float,
    device: torch.device,
) -> float:
    """Sum ``counts`` and the timers over all ranks, report the epoch's metrics (from rank 0),
    and return the global validation accuracy. ``compute_s``/``communication_s`` are the ranks'
    mean; ``validation_s`` is kept apart from training time (the clock itself never pauses)."""
    world = ctx.env.world_size
    sums = global_sums(
        *astuple(counts), ctx.timers.compute_s, ctx.timers.communication_s, device=device
    )
    loss, correct, seen, val_loss, val_correct, val_seen, compute, communication = sums
    validation_s = ctx.elapsed_s() - validation_started
    val_accuracy = val_correct / val_seen
    ctx.report_epoch(
        epoch,
        {
            "train_loss": loss / seen,
            "train_accuracy": correct / seen,
            "val_loss": val_loss / val_seen,
            "val_accuracy": val_accuracy,
            "samples_per_s": seen / train_time_s,
            "compute_s": compute / world,
            "communication_s": communication / world,
            "validation_s": validation_s,
        },
    )
    return val_accuracy


def check_target(ctx: TaskContext, epoch: int, val_accuracy: float, target: float) -> float | None:
    """The time to accuracy, reported, once ``val_accuracy`` reaches ``target``; else None."""
    if val_accuracy < target:
        return None
    return ctx.target_reached(epoch=epoch)


def task_result(
    target: float, reached_at: float | None, epochs: int, val_accuracy: float
) -> dict[str, Any]:
    return {
        "target_accuracy": target,
        "target_reached": reached_at is not None,
        "time_to_accuracy_s": reached_at,
        "epochs": epochs,
        "final_val_accuracy": val_accuracy,
    }
