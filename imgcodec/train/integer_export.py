"""Float PyTorch layers -> integer layers (imgcodec.integer_net) for the bit-exact entropy model.

Post-training quantization: each layer's weights get the largest power-of-two scale 2^s that
keeps them below 2^15, the bias goes to accumulator units, and activations carry
ACTIVATION_BITS fractional bits. The integer network is then a close copy of the float one:
what it changes is only how well the probabilities fit (a little rate), never whether encoder
and decoder agree (Balle, Johnston, Minnen, ICLR 2019, Sec. 2).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..integer_net import ACTIVATION_BITS, MAX_WEIGHT, IntLayer


def _scale_bits(weight: np.ndarray) -> int:
    """The largest s with max|w| * 2^s <= MAX_WEIGHT (at most 30)."""
    peak = float(np.abs(weight).max())
    if peak == 0:
        return 0
    return int(max(0, min(30, math.floor(math.log2(MAX_WEIGHT / peak)))))


def int_layer(module: nn.Module, leaky: bool) -> IntLayer:
    """A Conv2d (stride 1, padding k//2) or a ConvTranspose2d (stride 2, padding k//2,
    output_padding 1) as an IntLayer."""
    with torch.no_grad():
        if isinstance(module, nn.ConvTranspose2d):
            if module.stride != (2, 2) or module.output_padding != (1, 1) or module.padding[0] != module.kernel_size[0] // 2:
                raise ValueError(f"unsupported transposed convolution {module}")
            weight = module.weight.double().flip(2, 3).transpose(0, 1).numpy()  # in,out,k,k -> out,in,k,k
            upsample = 2
        elif isinstance(module, nn.Conv2d):
            if module.stride != (1, 1) or module.padding[0] != module.kernel_size[0] // 2 or module.groups != 1:
                raise ValueError(f"unsupported convolution {module}")
            weight = module.weight.double().numpy()
            upsample = 1
        else:
            raise TypeError(f"cannot export {type(module).__name__} as an integer layer")
        bias = module.bias.double().numpy() if module.bias is not None else np.zeros(weight.shape[0])
    shift = _scale_bits(weight)
    int_weight = np.rint(weight * (1 << shift)).astype(np.int64)
    int_bias = np.rint(bias * float(1 << (shift + ACTIVATION_BITS))).astype(np.int64)
    return IntLayer(int_weight, int_bias, shift, upsample, leaky)


def int_sequential(modules: list[nn.Module]) -> list[IntLayer]:
    """Convolutions, each optionally followed by LeakyReLU(0.1), as integer layers."""
    layers: list[IntLayer] = []
    for module in modules:
        if isinstance(module, nn.LeakyReLU):
            if not layers or layers[-1].leaky or abs(module.negative_slope - 0.1) > 1e-9:
                raise ValueError("only LeakyReLU(0.1) right after a convolution is supported")
            last = layers[-1]
            layers[-1] = IntLayer(last.weight, last.bias, last.shift, last.upsample, True)
        else:
            layers.append(int_layer(module, leaky=False))
    return layers
