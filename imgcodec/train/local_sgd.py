"""Local SGD: processes that train apart and average their weights every K steps.

Data-parallel training (DDP) all-reduces every step's gradients; on two CPU cores that exchange
and the wait for the slower process cost about a fifth of the time (docs/training.md: 1.85
against 2.28 steps per second). With local SGD (Stich, ICLR 2019; Lin et al., "Don't Use Large
Mini-Batches, Use Local SGD", ICLR 2020) every process takes its own optimizer steps on its own
crops, and every K steps they replace their weights, their weight averages and Adam's moments by
the mean over the processes; between synchronizations they drift apart a little, which those
papers find costs little at small K, and here the mean of two runs apart for 2,500 steps beat
each of them (docs/experiments/flat-crops).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .averaging import WeightAverage


def synchronized_tensors(model: nn.Module, optimizer: torch.optim.Optimizer,
                         average: WeightAverage | None) -> list[torch.Tensor]:
    """Every floating-point tensor that must agree across processes after a synchronization:
    the model's parameters and buffers, the weight average's shadow and the optimizer's
    per-parameter state (Adam's moments; its step counts are integers and agree anyway)."""
    tensors = [t for t in model.state_dict(keep_vars=True).values() if t.is_floating_point()]
    if average is not None:
        tensors += [average.shadow[name] for name in average.names]
    for state in optimizer.state.values():
        tensors += [v for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and k != "step"]
    return tensors


@torch.no_grad()
def average_across_processes(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor, in place, by its mean over the processes of the default group: one
    all-reduce of a flat float32 buffer (gloo handles one large message far faster than many)."""
    if not tensors:
        return
    world = dist.get_world_size()
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for tensor in tensors:
        count = tensor.numel()
        tensor.detach().copy_(flat[offset:offset + count].view_as(tensor))
        offset += count
