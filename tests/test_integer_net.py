"""imgcodec.integer_net: exact integer convolutions, and their export from PyTorch layers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from imgcodec import integer_net as inet
from imgcodec.integer_net import ACTIVATION_BITS, ACTIVATION_LIMIT, IntLayer
from imgcodec.train.integer_export import int_sequential


def _python_conv(layer: IntLayer, x: np.ndarray) -> np.ndarray:
    """The same layer with Python's unbounded integers, position by position (the reference)."""
    if layer.upsample == 2:
        up = np.zeros((x.shape[0], 2 * x.shape[1], 2 * x.shape[2]), dtype=object)
        up[:, ::2, ::2] = x
        x = up
    x = x.astype(object)
    k = layer.weight.shape[2]
    half = k // 2
    padded = np.pad(x, ((0, 0), (half, half), (half, half)))
    out = np.empty((layer.weight.shape[0],) + x.shape[1:], dtype=object)
    for o in range(out.shape[0]):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                acc = int((layer.weight[o].astype(object) * padded[:, i:i + k, j:j + k]).sum()) + int(layer.bias[o])
                value = max(-ACTIVATION_LIMIT, min(ACTIVATION_LIMIT, acc >> layer.shift))  # floor division
                out[o, i, j] = value // 10 if (layer.leaky and value < 0) else value
    return out.astype(np.int64)


@pytest.mark.parametrize("upsample", [1, 2])
def test_extreme_integers_are_computed_exactly(upsample: int) -> None:
    """Weights at +-(2^15 - 1), activations at +-2^24 and the most terms allowed: float64
    accumulation still gives Python's exact integers."""
    rng = np.random.default_rng(upsample)
    channels = inet.MAX_TERMS // 9
    weight = rng.choice([-inet.MAX_WEIGHT, inet.MAX_WEIGHT, 1, 0], size=(3, channels, 3, 3)).astype(np.int64)
    layer = IntLayer(weight, rng.integers(-(1 << 40), 1 << 40, 3), shift=7, upsample=upsample, leaky=True)
    x = rng.choice([-ACTIVATION_LIMIT, ACTIVATION_LIMIT, 12345, -1], size=(channels, 3, 2)).astype(np.int64)
    assert np.array_equal(inet.conv(layer, x), _python_conv(layer, x))


def test_layers_that_could_lose_exactness_are_refused() -> None:
    ok = np.ones((2, 3, 3, 3), np.int64)
    with pytest.raises(ValueError, match="2\\^15"):
        IntLayer(ok * (1 << 15), np.zeros(2, np.int64), 0)
    with pytest.raises(ValueError, match="terms"):
        IntLayer(np.ones((1, inet.MAX_TERMS, 3, 3), np.int64), np.zeros(1, np.int64), 0)
    with pytest.raises(ValueError, match="odd"):
        IntLayer(np.ones((2, 3, 2, 2), np.int64), np.zeros(2, np.int64), 0)
    with pytest.raises(ValueError, match="channels"):
        inet.conv(IntLayer(ok, np.zeros(2, np.int64), 0), np.zeros((4, 5, 5), np.int64))


def test_exported_layers_follow_the_float_network() -> None:
    torch.manual_seed(0)
    float_net = nn.Sequential(nn.ConvTranspose2d(6, 8, 5, stride=2, padding=2, output_padding=1), nn.LeakyReLU(0.1),
                              nn.Conv2d(8, 8, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(8, 4, 1))
    x = torch.randn(1, 6, 5, 7) * 4
    with torch.no_grad():
        expected = float_net(x)[0].numpy()
    layers = int_sequential(list(float_net))
    assert [layer.leaky for layer in layers] == [True, True, False] and layers[0].upsample == 2
    got = inet.run(layers, inet.to_fixed(x[0].numpy())) / (1 << ACTIVATION_BITS)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 0.01 * np.abs(expected).max()
    with pytest.raises(ValueError):
        int_sequential([nn.Conv2d(3, 3, 3, padding=1), nn.LeakyReLU(0.2)])
    with pytest.raises(ValueError):
        int_sequential([nn.Conv2d(3, 3, 3, stride=2, padding=1)])


def test_coarser_weights_take_the_step_asked_for_and_stay_close() -> None:
    """steps_per_rms: each layer's step is the largest power of two at most rms / N, and the
    network still follows the float one, less closely as N falls."""
    torch.manual_seed(1)
    float_net = nn.Sequential(nn.Conv2d(6, 16, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(16, 4, 1))
    x = torch.randn(1, 6, 5, 7)
    with torch.no_grad():
        expected = float_net(x)[0].numpy()
    errors = []
    for steps in (64, 8):
        layers = int_sequential(list(float_net), steps_per_rms=steps)
        for layer, module in zip(layers, (float_net[0], float_net[2])):
            step = 2.0 ** -layer.shift
            rms = float(module.weight.detach().pow(2).mean().sqrt())
            assert rms / (2 * steps) < step <= rms / steps
        got = inet.run(layers, inet.to_fixed(x[0].numpy())) / (1 << ACTIVATION_BITS)
        errors.append(np.abs(got - expected).max() / np.abs(expected).max())
    assert errors[0] < 0.02 and errors[0] < errors[1] < 0.3
    with pytest.raises(ValueError, match="at least 1"):
        int_sequential(list(float_net), steps_per_rms=0)
