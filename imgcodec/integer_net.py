"""Integer networks: the parts of a model that choose probabilities, computed exactly everywhere.

A range decoder must see the same probabilities as the encoder, to the last bit, or the rest of
the file decodes to garbage. Float networks do not promise that across machines (kernels, thread
counts and fused instructions change the rounding), so the networks that select probability
tables run as integer networks (Balle, Johnston, Minnen, "Integer Networks for Data Compression
with Latent-Variable Models", ICLR 2019): integer weights, biases and activations, with every
operation exact.

Fixed point: an activation a stands for a / 2^ACTIVATION_BITS. A layer with weights w / 2^s
accumulates sum(w * a) + b exactly, divides by 2^s with floor (exact for a power of two) and
clips to +-ACTIVATION_LIMIT. The products are summed by float64 matrix multiplication, which is
exact on integers as long as every partial sum stays below 2^53, whatever the summation order:
|w| < 2^15, |a| <= 2^24 and at most 2^13 terms per output keep it below 2^52. LeakyReLU's slope
0.1 is floor(a / 10) on negative values. The input is always decoded symbols, so the result is
a function of the file alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

ACTIVATION_BITS = 12
ACTIVATION_LIMIT = 1 << 24
MAX_WEIGHT = (1 << 15) - 1
MAX_TERMS = 1 << 13


@dataclass(frozen=True)
class IntLayer:
    """One integer convolution. weight: out,in,k,k int64 (|w| <= MAX_WEIGHT), as a plain
    convolution even for a transposed one (the exporter flips it); bias: out int64 in
    accumulator units (2^(ACTIVATION_BITS + shift)); upsample: 2 for a stride-2 transposed
    convolution (zeros between inputs), else 1; leaky: LeakyReLU(0.1) after the layer."""

    weight: np.ndarray
    bias: np.ndarray
    shift: int
    upsample: int = 1
    leaky: bool = False

    def __post_init__(self) -> None:
        out_channels, in_channels, k, k2 = self.weight.shape
        if k != k2 or k % 2 == 0:
            raise ValueError(f"kernels must be square and odd, got {k}x{k2}")
        if np.abs(self.weight).max(initial=0) > MAX_WEIGHT:
            raise ValueError("integer weights must stay below 2^15")
        if in_channels * k * k > MAX_TERMS:
            raise ValueError(f"{in_channels * k * k} terms per output exceed {MAX_TERMS}: sums could lose exactness")
        if self.bias.shape != (out_channels,) or np.abs(self.bias).max(initial=0) >= 1 << 50:
            raise ValueError("bias must be one integer per output channel, below 2^50")
        if not 0 <= self.shift < 40 or self.upsample not in (1, 2):
            raise ValueError("shift must be in 0..39 and upsample 1 or 2")

    @cached_property
    def taps(self) -> np.ndarray:
        """The weights as float64 k,k,out,in: each tap's matrix contiguous for BLAS, made once."""
        return np.ascontiguousarray(self.weight.transpose(2, 3, 0, 1).astype(np.float64))


def _accumulate(x: np.ndarray, taps: np.ndarray, rows: list[int], cols: list[int]) -> np.ndarray:
    """sum over c, a, b of taps[a, b, o, c] * x[c, i + rows[a], j + cols[b]] (zero outside x),
    for every output o and position i, j of x: out,H,W float64 from x C,H,W float64 holding
    integers, exact (see the module docstring).

    One matrix product per tap, without copying patches: in the zero-padded input laid out flat,
    the input of tap (a, b) for every position is one contiguous run of the rows, read in place
    (a strided view that BLAS takes as it is); positions in the padding columns are computed
    and dropped."""
    channels, height, width = x.shape
    out_channels = taps.shape[2]
    top, bottom = max(0, -min(rows)), max(0, max(rows))
    left, right = max(0, -min(cols)), max(0, max(cols))
    if len(rows) == len(cols) == 1 and rows[0] == cols[0] == 0:
        return (taps[0, 0] @ x.reshape(channels, -1)).reshape(out_channels, height, width)
    padded_width = width + left + right
    # one more zero row below, so that the last tap's run of rows stays inside the array
    padded = np.pad(x, ((0, 0), (top, bottom + 1), (left, right))).reshape(channels, -1)
    span = height * padded_width
    acc = np.zeros((out_channels, span), dtype=np.float64)
    for a, dy in enumerate(rows):
        for b, dx in enumerate(cols):
            start = (top + dy) * padded_width + left + dx
            acc += taps[a, b] @ padded[:, start:start + span]
    return acc.reshape(out_channels, height, padded_width)[:, :, :width]


def _conv(layer: IntLayer, x: np.ndarray) -> np.ndarray:
    """One layer on x: C,H,W float64 integers -> out,H',W' float64 integers (H' = H, or 2H when
    upsampling). Every step is exact in float64: sums
    below 2^53, division by a power of two, floor, and floor(a / 10) for |a| <= 2^24 (a / 10 is
    never within 2^-29 of an integer it is not)."""
    out_channels, in_channels, k, _ = layer.weight.shape
    if x.shape[0] != in_channels:
        raise ValueError(f"layer takes {in_channels} channels, got {x.shape[0]}")
    half = k // 2
    if layer.upsample == 1:
        offsets = list(range(-half, half + 1))
        acc = _accumulate(x, layer.taps, offsets, offsets)
    else:
        # A stride-2 transposed convolution (torch.nn.ConvTranspose2d(stride=2, padding=k//2,
        # output_padding=1), whose kernel the exporter flipped and transposed) is a plain
        # convolution of the input with zeros between its values. Only every other tap meets a
        # value, so each output parity (ry, rx) is a small convolution of the input itself with
        # the taps a of matching parity, reading input row i + (a + ry - half) / 2.
        height, width = x.shape[1:]
        acc = np.empty((out_channels, 2 * height, 2 * width), dtype=np.float64)
        for ry in (0, 1):
            taps_y = [a for a in range(k) if (a + ry - half) % 2 == 0]
            for rx in (0, 1):
                taps_x = [b for b in range(k) if (b + rx - half) % 2 == 0]
                acc[:, ry::2, rx::2] = _accumulate(x, layer.taps[np.ix_(taps_y, taps_x)], [(a + ry - half) // 2 for a in taps_y],
                                                   [(b + rx - half) // 2 for b in taps_x])
    acc += layer.bias.astype(np.float64)[:, None, None]  # exact: integers below 2^53
    acc *= 1.0 / float(1 << layer.shift)  # exact: a power of two
    out = np.floor(acc, out=acc)
    np.clip(out, -ACTIVATION_LIMIT, ACTIVATION_LIMIT, out=out)
    if layer.leaky:
        # floor(a / 10) on negative a, as max(a, floor(a / 10)): for an integer a >= 0 that is a,
        # for a < 0 it is floor(a / 10) (>= a); no boolean gather and scatter, which was far slower.
        tenth = out / 10.0
        np.floor(tenth, out=tenth)  # in place: one temporary array, not two
        np.maximum(out, tenth, out=out)
    return out


def conv(layer: IntLayer, x: np.ndarray) -> np.ndarray:
    """One layer on x: C,H,W int64 -> out,H',W' int64 (H' = H, or 2H when upsampling)."""
    return _conv(layer, np.asarray(x, np.float64)).astype(np.int64)


def run(layers: list[IntLayer], x: np.ndarray) -> np.ndarray:
    """The layers one after another on x: C,H,W int64 activations (carried between layers as
    float64 integers, which every step keeps exact)."""
    values = np.asarray(x, np.float64)
    for layer in layers:
        values = _conv(layer, values)
    return values.astype(np.int64)


def to_fixed(values: np.ndarray) -> np.ndarray:
    """Floats -> activations (value * 2^ACTIVATION_BITS, rounded half to even), int64."""
    return np.clip(np.rint(np.asarray(values, np.float64) * (1 << ACTIVATION_BITS)),
                   -ACTIVATION_LIMIT, ACTIVATION_LIMIT).astype(np.int64)
