"""Tests of imgcodec.metrics against scikit-image, pytorch-msssim and an independent MS-SSIM."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import fftconvolve
from skimage.metrics import peak_signal_noise_ratio

from imgcodec.metrics import (MS_SSIM_MIN_SIDE, bits_per_pixel, ms_ssim_db, ms_ssim_rgb,
                              pad_for_ms_ssim, psnr_rgb)


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A natural-ish test image: colour gradients, a blob and mild texture; (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)  # (H, W) each
    blob = 60.0 * np.exp(-((x - width / 3) ** 2 + (y - height / 2) ** 2) / (0.05 * width * height))
    base = np.stack([30 + 180 * x / width + blob,
                     40 + 150 * y / height,
                     200 - 120 * (x + y) / (width + height) + blob / 2], axis=-1)  # (H, W, 3)
    texture = rng.normal(0.0, 4.0, size=base.shape)
    return np.clip(np.rint(base + texture), 0, 255).astype(np.uint8)


def add_noise(rgb: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    """Add Gaussian noise of standard deviation sigma (in 0..255 units), clip, round."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, size=rgb.shape)
    return np.clip(np.rint(rgb + noise), 0, 255).astype(np.uint8)


def reference_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Independent MS-SSIM (Wang et al. 2003) in float64 numpy/scipy, written from the paper:
    11-tap Gaussian (sigma 1.5) 'valid' filtering, K1 0.01, K2 0.03, L 255, 2x2 average
    downsampling, contrast-structure at scales 1-4, full SSIM at scale 5, mean over channels.
    Only for sizes divisible by 16 (no padding question at the downsampling steps).
    """
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    taps = np.arange(11) - 5.0
    g = np.exp(-taps ** 2 / (2 * 1.5 ** 2))
    window = np.outer(g, g) / np.outer(g, g).sum()  # (11, 11)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(plane: np.ndarray) -> np.ndarray:
        return fftconvolve(plane, window, mode="valid")

    per_channel = []
    for channel in range(3):
        x = a[..., channel].astype(np.float64)
        y = b[..., channel].astype(np.float64)
        value = 1.0
        for scale, weight in enumerate(weights):
            mu_x, mu_y = blur(x), blur(y)
            var_x = blur(x * x) - mu_x ** 2
            var_y = blur(y * y) - mu_y ** 2
            cov = blur(x * y) - mu_x * mu_y
            cs = np.mean((2 * cov + c2) / (var_x + var_y + c2))
            if scale < len(weights) - 1:
                value *= max(cs, 0.0) ** weight
                h, w = x.shape
                x = x.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
                y = y.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            else:
                luminance = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
                ssim = np.mean(luminance * (2 * cov + c2) / (var_x + var_y + c2))
                value *= max(ssim, 0.0) ** weight
        per_channel.append(value)
    return float(np.mean(per_channel))


# --------------------------------------------------------------------------- PSNR


@pytest.mark.parametrize("sigma", [1.0, 5.0, 25.0])
def test_psnr_matches_skimage(sigma: float) -> None:
    image = smooth_image(48, 64)
    noisy = add_noise(image, sigma)
    expected = peak_signal_noise_ratio(image, noisy, data_range=255)
    assert psnr_rgb(image, noisy) == pytest.approx(expected, abs=1e-10)


def test_psnr_hand_worked() -> None:
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 12  # MSE = 144 / 12 = 12 -> 10 log10(255^2 / 12)
    assert psnr_rgb(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 12))


def test_psnr_identical_is_inf() -> None:
    image = smooth_image(10, 12)
    assert psnr_rgb(image, image.copy()) == math.inf


def test_shape_and_dtype_checked() -> None:
    image = smooth_image(10, 12)
    with pytest.raises(ValueError):
        psnr_rgb(image, image[:-1])
    with pytest.raises(ValueError):
        ms_ssim_rgb(image, image.astype(np.float32))


# --------------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_identical_is_one() -> None:
    image = smooth_image(48, 64)
    assert ms_ssim_rgb(image, image.copy()) == 1.0


def test_ms_ssim_matches_pytorch_msssim_and_independent_reference() -> None:
    import torch
    from pytorch_msssim import ms_ssim

    image = smooth_image(192, 224)  # >= 161 px: no padding; multiple of 16: clean pyramid
    noisy = add_noise(image, 12.0)
    value = ms_ssim_rgb(image, noisy)

    def to_tensor(rgb: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float64)).unsqueeze(0)

    direct = float(ms_ssim(to_tensor(image), to_tensor(noisy), data_range=255, size_average=True))
    assert value == pytest.approx(direct, abs=1e-6)
    assert value == pytest.approx(reference_ms_ssim(image, noisy), abs=1e-5)
    assert 0.5 < value < 0.999


def test_ms_ssim_decreases_with_noise() -> None:
    image = smooth_image(48, 64)  # small: exercises the reflection padding too
    values = [ms_ssim_rgb(image, add_noise(image, sigma)) for sigma in (2.0, 6.0, 15.0, 40.0)]
    assert all(0.0 < v < 1.0 for v in values)
    assert values == sorted(values, reverse=True)


def test_small_images_are_padded_by_reflection() -> None:
    image = smooth_image(48, 64)
    padded = pad_for_ms_ssim(image)
    assert padded.shape == (MS_SSIM_MIN_SIDE, MS_SSIM_MIN_SIDE, 3)
    top, left = (MS_SSIM_MIN_SIDE - 48) // 2, (MS_SSIM_MIN_SIDE - 64) // 2
    np.testing.assert_array_equal(padded[top:top + 48, left:left + 64], image)
    large = smooth_image(MS_SSIM_MIN_SIDE, 170)
    assert pad_for_ms_ssim(large) is large
    tiny = smooth_image(1, 3)  # still gives a number
    assert 0.0 < ms_ssim_rgb(tiny, add_noise(tiny, 30.0)) <= 1.0


def test_ms_ssim_db() -> None:
    assert ms_ssim_db(0.9) == pytest.approx(10.0)
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(1.0) == math.inf


def test_bits_per_pixel() -> None:
    assert bits_per_pixel(1000, 100, 80) == pytest.approx(1.0)
    assert bits_per_pixel(0, 3, 5) == 0.0
    with pytest.raises(ValueError):
        bits_per_pixel(10, 0, 5)


def test_importing_metrics_does_not_import_torch() -> None:
    code = "import sys, imgcodec.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
