"""Training crops: the sampler's reproducibility and its rejection of flat crops."""
from __future__ import annotations

import numpy as np
import pytest

from imgcodec.train.config import TrainConfig
from imgcodec.train.data import CropSampler, activity


def _photos() -> list[np.ndarray]:
    """A flat gray photo and a noise photo of the same size (64x64)."""
    flat = np.full((64, 64, 3), 128, dtype=np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return [flat, noise]


def _flat_share(batch: np.ndarray) -> float:
    return float(np.mean([activity(crop) == 0 for crop in batch]))


def test_activity_is_zero_on_flat_and_large_on_noise() -> None:
    flat, noise = _photos()
    assert activity(flat) == 0.0
    assert activity(noise) > 50  # uniform noise: E|a - b| = 256 / 3 per direction, less after the channel mean


def test_sampler_without_threshold_draws_by_area() -> None:
    share = _flat_share(CropSampler(_photos(), 32, seed=1).batch(400))
    assert 0.4 < share < 0.6


def test_sampler_rejects_flat_crops() -> None:
    sampler = CropSampler(_photos(), 32, seed=1, flat_activity=12.0)
    assert _flat_share(sampler.batch(200)) == 0.0


def test_sampler_is_reproducible_from_its_seed() -> None:
    first = CropSampler(_photos(), 32, seed=5, flat_activity=12.0).batch(8)
    second = CropSampler(_photos(), 32, seed=5, flat_activity=12.0).batch(8)
    assert np.array_equal(first, second)


def test_sampler_of_flat_photos_only_still_returns_crops() -> None:
    sampler = CropSampler([_photos()[0]], 32, seed=1, flat_activity=12.0)
    assert sampler.batch(2).shape == (2, 32, 32, 3)


def test_negative_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="flat_activity"):
        CropSampler(_photos(), 32, seed=1, flat_activity=-1.0)
    with pytest.raises(ValueError, match="flat_crop_activity"):
        TrainConfig(flat_crop_activity=-1.0)
