"""Image quality and rate metrics used by ``shaec bench``.

All functions take 8-bit RGB images as numpy arrays of shape (H, W, 3), dtype uint8.

MS-SSIM comes from pytorch-msssim (maintained, the implementation CompressAI's evaluations and
most learned-compression papers use, so our numbers compare with theirs). It needs torch, which
the runtime install leaves out: it is in the ``bench`` extra, imported inside
:func:`ms_ssim_rgb`, and :func:`ms_ssim_available` tells whether it is installed.
"""

from __future__ import annotations

import math

import numpy as np

PEAK_8BIT = 255.0

#: MS-SSIM Gaussian window size (Wang et al. 2003; pytorch-msssim default).
MS_SSIM_WIN_SIZE = 11
#: Number of MS-SSIM scales of Wang et al. 2003 (weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
MS_SSIM_SCALES = 5
#: Shortest side pytorch-msssim accepts for 5 scales with an 11-tap window: (11 - 1) * 2**4 + 1.
MS_SSIM_MIN_SIDE = (MS_SSIM_WIN_SIZE - 1) * 2 ** (MS_SSIM_SCALES - 1) + 1


#: What to install for MS-SSIM (and the bench), said by the commands that need it.
BENCH_EXTRA_HINT = "pip install 'shaec[bench]' (it brings torch and pytorch-msssim)"


def ms_ssim_available() -> bool:
    """Whether MS-SSIM can be computed here (torch and pytorch-msssim are installed)."""
    from importlib.util import find_spec

    return find_spec("torch") is not None and find_spec("pytorch_msssim") is not None


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    """Raise ValueError unless a and b are uint8 RGB images of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {a.dtype} and {b.dtype}")


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all R, G and B values (one MSE over H*W*3 samples), peak 255.

    Returns ``inf`` for identical images.
    """
    _check_pair(a, b)
    diff = a.astype(np.float64) - b.astype(np.float64)  # (H, W, 3)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(PEAK_8BIT * PEAK_8BIT / mse)


def pad_for_ms_ssim(rgb: np.ndarray, min_side: int = MS_SSIM_MIN_SIDE) -> np.ndarray:
    """Pad H and W up to ``min_side`` by mirror reflection (numpy ``reflect`` mode, repeated if needed).

    pytorch-msssim refuses images whose short side is below (win_size - 1) * 2**4 + 1 = 161 px,
    because the coarsest of the 5 scales would be smaller than the window. Reflection padding
    keeps the standard 5 scales and weights, so every image gets a number; for such small images
    the value is only approximately the MS-SSIM of the unpadded image (the mirrored border is
    counted too) and is not comparable with published numbers on large images.
    """
    height, width = rgb.shape[:2]
    pad_h = max(0, min_side - height)
    pad_w = max(0, min_side - width)
    if pad_h == 0 and pad_w == 0:
        return rgb
    # Split the padding between both sides so the original stays centred.
    pad = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    if min(height, width) < 2:
        return np.pad(rgb, pad, mode="edge")  # reflection needs at least 2 samples
    return np.pad(rgb, pad, mode="reflect")


def ms_ssim_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two RGB images (Wang, Simoncelli and Bovik 2003), mean over the 3 channels.

    Standard settings: 5 scales with the paper's weights, 11x11 Gaussian window (sigma 1.5),
    K1 = 0.01, K2 = 0.03, data_range 255, computed by pytorch-msssim on the 0..255 values in
    float32 (float64 changes the result by ~1e-8 and is 20-30 % slower). Images with a side
    below 161 px are first padded by reflection on both sides (see :func:`pad_for_ms_ssim`).
    Identical images give exactly 1.0.
    """
    _check_pair(a, b)
    if np.array_equal(a, b):
        return 1.0
    import torch  # lazy: torch is slow to import and only needed here
    from pytorch_msssim import ms_ssim

    def to_tensor(rgb: np.ndarray) -> "torch.Tensor":
        padded = pad_for_ms_ssim(rgb)  # (H', W', 3), H', W' >= 161
        chw = np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32)  # (3, H', W')
        return torch.from_numpy(chw).unsqueeze(0)  # (1, 3, H', W')

    # One image is too small a job for torch's intra-op threads: they only add overhead, and
    # on a shared CPU (e.g. next to a training run) their spin-waiting made MS-SSIM 10-20x
    # slower in our measurements. Run single-threaded, restoring the caller's setting.
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            value = ms_ssim(to_tensor(a), to_tensor(b), data_range=PEAK_8BIT, size_average=True,
                            win_size=MS_SSIM_WIN_SIZE)
    finally:
        torch.set_num_threads(caller_threads)
    return float(value)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10 log10(1 - v), as plotted by CompressAI and most papers.

    ``inf`` for v >= 1 (identical images).
    """
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)


def bits_per_pixel(n_bytes: int, width: int, height: int) -> float:
    """Rate in bits per pixel: 8 * bytes / (width * height)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return 8.0 * n_bytes / (width * height)
