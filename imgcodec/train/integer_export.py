"""Float PyTorch layers -> integer layers (imgcodec.integer_net) for the bit-exact entropy model.

Post-training quantization: each layer's weights get the largest power-of-two scale 2^s that
keeps them below 2^15, the bias goes to accumulator units, and activations carry
ACTIVATION_BITS fractional bits. The integer network is then a close copy of the float one:
what it changes is only how well the probabilities fit (a little rate), never whether encoder
and decoder agree (Balle, Johnston, Minnen, ICLR 2019, Sec. 2).

A model that ships its entropy model small asks for fewer weight steps instead
(`steps_per_rms`): the step 2^-s is the largest power of two at most rms / steps_per_rms, so the
integers have about log2(steps_per_rms) + 2 bits of entropy each, which the model file's
compressor then sees (imgcodec.hyperprior.HyperpriorTables.save). The rate this costs is
measured, not assumed (scripts/weights_dogfood.py --checkpoint).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..integer_net import ACTIVATION_BITS, MAX_WEIGHT, IntLayer


def weight_scale_bits(weight: np.ndarray, steps_per_rms: int | None = None) -> int:
    """The largest s with max|w| * 2^s <= MAX_WEIGHT (at most 30); with steps_per_rms, the
    smallest s with 2^-s <= rms(w) / steps_per_rms, if that is smaller."""
    if steps_per_rms is not None and steps_per_rms < 1:
        raise ValueError(f"steps_per_rms must be at least 1, not {steps_per_rms}")
    peak = float(np.abs(weight).max())
    if peak == 0:
        return 0
    bits = int(max(0, min(30, math.floor(math.log2(MAX_WEIGHT / peak)))))
    if steps_per_rms is not None:
        rms = float(np.sqrt(np.mean(np.square(weight))))
        bits = min(bits, max(0, math.ceil(math.log2(steps_per_rms / rms))))
    return bits


def int_layer(module: nn.Module, leaky: bool, steps_per_rms: int | None = None) -> IntLayer:
    """A Conv2d (stride 1, padding k//2) or a ConvTranspose2d (stride 2, padding k//2,
    output_padding 1) as an IntLayer; steps_per_rms: coarser weights (module docstring)."""
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
    shift = weight_scale_bits(weight, steps_per_rms)
    int_weight = np.rint(weight * (1 << shift)).astype(np.int64)
    int_bias = np.rint(bias * float(1 << (shift + ACTIVATION_BITS))).astype(np.int64)
    return IntLayer(int_weight, int_bias, shift, upsample, leaky)


def int_sequential(modules: list[nn.Module], steps_per_rms: int | None = None) -> list[IntLayer]:
    """Convolutions, each optionally followed by LeakyReLU(0.1), as integer layers."""
    layers: list[IntLayer] = []
    for module in modules:
        if isinstance(module, nn.LeakyReLU):
            if not layers or layers[-1].leaky or abs(module.negative_slope - 0.1) > 1e-9:
                raise ValueError("only LeakyReLU(0.1) right after a convolution is supported")
            last = layers[-1]
            layers[-1] = IntLayer(last.weight, last.bias, last.shift, last.upsample, True)
        else:
            layers.append(int_layer(module, leaky=False, steps_per_rms=steps_per_rms))
    return layers
