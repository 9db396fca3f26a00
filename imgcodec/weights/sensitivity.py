"""How much rounding each weight tensor costs at a network's output, measured on sample inputs.

The weight codec's bit allocation (imgcodec.weights.codec.unit_steps) needs, per tensor, the
output error caused per unit of noise variance in each of its weights. Under the high-rate model
the rounding error of a fine uniform quantizer is uniform noise of variance Δ²/12, independent
between weights, so one seeded draw of such noise per tensor, at a step well inside the linear
regime, measures it: g = (output error with the noise - without) / (Δ²/12). This is the
calibration step of post-training quantization (a few sample inputs, no labels, no training),
here used for step sizes rather than for activation ranges. Works for any network that a
callable can run with substituted weights (an ONNX graph through onnx_weights, a torch module).
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

#: Noise step as a share of each tensor's RMS: coarse enough to stand out of float rounding,
#: fine enough that the error stays quadratic in it (on shae-v8's 46 transform tensors, 1/16 of
#: the RMS gives the sensitivities of 1/8 within 5 %, but for one GDN matrix at 21 %).
NOISE_STEP = 1 / 8

Outputs = Sequence[np.ndarray]


def measure(tensors: Mapping[str, np.ndarray], names: Iterable[str], run: Callable[[dict[str, np.ndarray]], Outputs],
            error: Callable[[Outputs, Outputs], float], seed: int = 0) -> dict[str, float]:
    """name -> sensitivity g for each named tensor. `run(weights)` gives the network's outputs
    on the sample inputs with these weights; `error(outputs, reference)` is the quantity that
    should stay small (e.g. mean squared difference relative to the image's own error)."""
    rng = np.random.default_rng(seed)
    weights = dict(tensors)
    reference = run(weights)
    result = {}
    for name in names:
        array = tensors[name]
        rms = float(np.sqrt(np.mean(np.square(array, dtype=np.float64)))) or 1.0
        step = NOISE_STEP * rms
        noise = rng.uniform(-step / 2, step / 2, array.shape)
        weights[name] = (array.astype(np.float64) + noise).astype(array.dtype)
        result[name] = max(error(run(weights), reference), 0.0) / (step * step / 12)
        weights[name] = array
    return result


def mean_squared_error(outputs: Outputs, reference: Outputs) -> float:
    """Mean over the sample outputs of their mean squared difference."""
    return float(np.mean([np.mean(np.square(o.astype(np.float64) - r)) for o, r in zip(outputs, reference)]))
