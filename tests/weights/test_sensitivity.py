"""Sensitivity-weighted bit allocation: the measurement and the steps it gives
(imgcodec.weights.sensitivity, codec.unit_steps)."""
from __future__ import annotations

import numpy as np
import pytest

from imgcodec.weights import sensitivity
from imgcodec.weights.codec import WeightCodecConfig, compress_tensors, decompress_record

RNG = np.random.default_rng(5)
INPUTS = RNG.normal(size=(64, 40)).astype(np.float32)  # 40 sample inputs of 64 values
GAIN = 10.0  # the second layer's output counts GAIN^2 = 100 times more


def _run(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Two parallel linear maps of the same inputs, the second amplified."""
    return [weights["a"] @ INPUTS, GAIN * (weights["b"] @ INPUTS)]


def _tensors() -> dict[str, np.ndarray]:
    return {"a": RNG.normal(0, 0.05, (96, 64)).astype(np.float32), "b": RNG.normal(0, 0.05, (96, 64)).astype(np.float32)}


def test_sensitivity_of_a_linear_map_is_its_input_energy() -> None:
    # Noise E of variance v per weight in W gives E @ X: per output value v * mean ||x||^2; the
    # mean squared error averages the two equal-sized outputs.
    tensors = _tensors()
    before = {k: v.copy() for k, v in tensors.items()}
    measured = sensitivity.measure(tensors, ["a", "b"], _run, sensitivity.mean_squared_error)
    assert all(np.array_equal(tensors[k], before[k]) for k in tensors)  # the caller's arrays are untouched
    energy = float(np.mean(np.sum(INPUTS.astype(np.float64) ** 2, axis=0)))
    assert measured["a"] == pytest.approx(energy / 2, rel=0.1)
    assert measured["b"] == pytest.approx(GAIN ** 2 * energy / 2, rel=0.1)


def test_sensitive_tensors_get_finer_steps_and_the_output_error_drops() -> None:
    tensors = _tensors()
    measured = sensitivity.measure(tensors, ["a", "b"], _run, sensitivity.mean_squared_error)
    named = {k: (v, "<f4") for k, v in tensors.items()}
    config = WeightCodecConfig(target_bits_per_weight=3.0)
    by_rms = {r.name: r for r in compress_tensors(named, config)}
    weighted = {r.name: r for r in compress_tensors(named, config, measured)}
    # Optimal steps go as sqrt(n / g): b, 100 times as sensitive, gets a 10 times finer step.
    assert weighted["a"].step / weighted["b"].step == pytest.approx(np.sqrt(measured["b"] / measured["a"]), rel=0.01)
    assert by_rms["a"].step / by_rms["b"].step == pytest.approx(1.0, rel=0.1)

    def output_error(records: dict) -> float:
        return sensitivity.mean_squared_error(_run({k: decompress_record(r) for k, r in records.items()}), _run(tensors))

    def bits(records: dict) -> float:
        return 8 * sum(len(r.payload) for r in records.values()) / sum(a.size for a in tensors.values())

    assert bits(weighted) == pytest.approx(3.0, abs=0.15) and bits(by_rms) == pytest.approx(3.0, abs=0.15)
    assert output_error(weighted) < 0.6 * output_error(by_rms)


def test_sensitivities_must_cover_every_quantized_tensor_and_be_positive() -> None:
    named = {k: (v, "<f4") for k, v in _tensors().items()}
    with pytest.raises(ValueError, match="no sensitivity for b"):
        compress_tensors(named, WeightCodecConfig(), {"a": 1.0})
    with pytest.raises(ValueError, match="finite and positive: a"):
        compress_tensors(named, WeightCodecConfig(), {"a": 0.0, "b": 1.0})
