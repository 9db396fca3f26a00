"""Multiply-adds of a model's layers at a given input size: where a transform's time can go.

Counted by forward hooks on one run of the module: a convolution costs one multiply-add per
output value and kernel tap and input channel of its group, a transposed one the same per input
value and output channel, and GDN (imgcodec.train.transforms) one per value and channel of its
1x1 normalisation; activations, biases and square roots are not counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .transforms import GDN


@dataclass(frozen=True)
class LayerCost:
    """One layer's multiply-adds in one run, with its input and output shapes (C,H,W)."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    multiply_adds: int


def _cost(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    if isinstance(module, nn.ConvTranspose2d):
        taps = module.kernel_size[0] * module.kernel_size[1]
        return inputs.numel() * taps * module.out_channels // module.groups
    if isinstance(module, nn.Conv2d):
        taps = module.kernel_size[0] * module.kernel_size[1]
        return output.numel() * taps * module.in_channels // module.groups
    if isinstance(module, GDN):
        return inputs.numel() * inputs.shape[1]
    return 0


@torch.no_grad()
def layer_costs(module: nn.Module, x: torch.Tensor) -> list[LayerCost]:
    """The multiply-adds of every convolution and GDN inside `module` when it runs on x (batch 1)."""
    if x.shape[0] != 1:
        raise ValueError("layer_costs counts one input: give a batch of 1")
    costs: list[LayerCost] = []

    def hook(name: str):
        def record(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            costs.append(LayerCost(name, type(layer).__name__, tuple(inputs[0].shape[1:]), tuple(output.shape[1:]),
                                   _cost(layer, inputs[0], output)))
        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in module.named_modules()
               if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, GDN))]
    try:
        module(x)
    finally:
        for handle in handles:
            handle.remove()
    return costs
