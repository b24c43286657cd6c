"""The collectives the training tasks share: gradient averaging and global sums."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


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
