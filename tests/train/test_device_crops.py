"""Crops cut on the training device: the host sampler's draw, made with torch (here on the CPU)."""
from __future__ import annotations

import numpy as np
import torch

from imgcodec.train.device_crops import DeviceCropSampler


def _flat_and_noise() -> list[np.ndarray]:
    """Two 48x48 photos of equal area: one flat (activity 0), one of uniform noise."""
    noise = np.random.default_rng(5).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    return [np.full_like(noise, 90), noise]


def _saturated() -> np.ndarray:
    """A red-first photo (R > G > B everywhere) with a little texture, 64x64."""
    texture = np.random.default_rng(6).integers(-8, 9, (64, 64, 1))
    return np.clip(np.array([200, 120, 40]) + texture, 0, 255).astype(np.uint8)


def test_crops_shape_range_flat_share_flips_and_seed() -> None:
    photos = _flat_and_noise()
    plain = DeviceCropSampler(photos, 16, 0, "cpu").batch(200)
    assert plain.shape == (200, 3, 16, 16) and plain.dtype == torch.float32
    assert 0.0 <= float(plain.min()) and float(plain.max()) <= 1.0
    flat = float((plain.std(dim=(1, 2, 3)) == 0).float().mean())
    assert 0.35 < flat < 0.65  # photos drawn by area: half the crops from the flat one
    thinned = DeviceCropSampler(photos, 16, 0, "cpu", flat_activity=4.0).batch(200)
    assert float((thinned.std(dim=(1, 2, 3)) == 0).float().mean()) == 0.0  # activity 0 is never kept
    first = DeviceCropSampler(photos, 16, 7, "cpu", colour_augment=True).batch(8)
    assert torch.equal(first, DeviceCropSampler(photos, 16, 7, "cpu", colour_augment=True).batch(8))
    ramp = np.repeat(np.repeat((np.arange(16, dtype=np.uint8) * 10)[None, :, None], 16, 0), 3, 2)  # brighter rightward
    crops = DeviceCropSampler([ramp], 16, 1, "cpu").batch(100)
    assert 0.3 < float((crops[:, 0, 0, -1] > crops[:, 0, 0, 0]).float().mean()) < 0.7  # half flipped


def test_colour_augment_orders_channels_and_stretches_saturation() -> None:
    """All six channel orders; half the crops' saturation stretched by 1-1.5x about each pixel's
    grey, which is kept."""
    photo = _saturated()
    batch = (DeviceCropSampler([photo], 32, 3, "cpu", colour_augment=True).batch(300) * 255).round().numpy()
    batch = batch.transpose(0, 2, 3, 1)  # N,H,W,3
    assert len({tuple(np.argsort(-crop.reshape(-1, 3).mean(axis=0))) for crop in batch}) == 6
    spread = (batch.max(axis=3) - batch.min(axis=3)).mean(axis=(1, 2))  # per crop
    original = float((photo.max(axis=2).astype(int) - photo.min(axis=2)).mean())
    stretched = spread > original * 1.02
    assert 0.3 < stretched.mean() < 0.7 and spread.max() <= original * 1.5 + 2
    assert abs(batch.mean() - photo.astype(float).mean()) < 1.0
