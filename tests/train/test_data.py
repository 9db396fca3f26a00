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


def _orange_photo() -> np.ndarray:
    """An earth-toned photo: R > G > B everywhere, with some texture."""
    rng = np.random.default_rng(2)
    base = np.array([200, 120, 60], dtype=np.int64)
    return np.clip(base + rng.integers(-10, 11, (64, 64, 1)), 0, 255).astype(np.uint8)


def test_colour_augment_orders_channels_every_way_and_stretches_saturation() -> None:
    photo = _orange_photo()
    batch = CropSampler([photo], 32, seed=3, colour_augment=True).batch(300)
    orders = {tuple(np.argsort(-crop.reshape(-1, 3).mean(axis=0))) for crop in batch}
    assert len(orders) == 6  # the red-first photo comes in all six channel orders
    spread = (batch.max(axis=3).astype(int) - batch.min(axis=3)).mean(axis=(1, 2))  # per crop
    original = float((photo.max(axis=2).astype(int) - photo.min(axis=2)).mean())
    stretched = spread > original * 1.02
    assert 0.3 < stretched.mean() < 0.7 and spread.max() <= original * 1.5 + 2  # half the crops, by at most 1.5x
    grey = batch.astype(float).mean(axis=3).mean()  # the channels' mean is kept (up to rounding)
    assert abs(grey - photo.astype(float).mean()) < 1.0


def test_colour_augment_is_off_by_default_and_reproducible() -> None:
    photo = _orange_photo()
    plain = CropSampler([photo], 32, seed=3).batch(20)
    assert all(tuple(np.argsort(-c.reshape(-1, 3).mean(axis=0))) == (0, 1, 2) for c in plain)
    first = CropSampler([photo], 32, seed=4, colour_augment=True).batch(8)
    assert np.array_equal(first, CropSampler([photo], 32, seed=4, colour_augment=True).batch(8))


def test_tiles_are_lossless_webp_that_load_back_exactly(tmp_path) -> None:
    """pack_tiles writes what a GPU machine takes along; load_images must read back the very
    pixels (lossless WebP), as training on them assumes."""
    from imgcodec.train.data import load_images, pack_tiles

    photos = [np.random.default_rng(1).integers(0, 256, (80, 96, 3), dtype=np.uint8)]
    written = pack_tiles(photos, 32, 5, tmp_path / "train", seed=3)
    paths = sorted((tmp_path / "train").iterdir())
    assert [p.suffix for p in paths] == [".webp"] * 5
    assert written == sum(p.stat().st_size for p in paths)
    expected = CropSampler(photos, 32, 3).batch(5)
    assert np.array_equal(np.stack(load_images(tmp_path / "train")), expected)
