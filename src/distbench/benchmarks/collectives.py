"""The collectives the training tasks share: a synchronous data-parallel step, gradient
averaging and global sums."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn

from distbench.worker.session import Session


@contextmanager
def synchronous_step(
    session: Session, model: nn.Module, optimizer: torch.optim.Optimizer
) -> Iterator[None]:
    """One step of synchronous data-parallel SGD around a body that computes the loss and calls
    ``backward()``: then the gradients are averaged over the ranks and the optimizer steps.
    Timed as MLBench splits a step: the body and the update as compute, the all-reduce as
    communication."""
    with session.compute():
        optimizer.zero_grad()
        yield
    with session.communication():
        average_gradients(model, session.world_size)
    with session.compute():
        optimizer.step()


def average_gradients(model: nn.Module, world_size: int) -> None:
    """Average the gradients over all ranks with one all-reduce of a flat buffer (one
    collective a step, not one per tensor: with gloo, per-tensor calls cost most of a step)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for grad in grads:
        count = grad.numel()
        grad.copy_(flat[offset : offset + count].view_as(grad))
        offset += count


def global_sums(*values: float, device: torch.device) -> list[float]:
    """Each value summed over all ranks (on ``device``: nccl reduces GPU tensors only)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.cpu()]


def share_weights(model: nn.Module) -> None:
    """Every rank starts from rank 0's parameters and buffers."""
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)
