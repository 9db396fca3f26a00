"""One evaluation loop, shared by export, training validation, checkpoint evaluation and scripts.

Each image is encoded to real bytes and decoded again; the rate is those bytes per pixel, next
to the coder's estimate, and quality is PSNR (and optionally MS-SSIM) of the decoded 8-bit image.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from .metrics import psnr_rgb


class Encoded(Protocol):
    data: bytes
    estimated_bits: float


class EvaluableCodec(Protocol):
    """What evaluate needs: imgcodec.codec.Codec, or a checkpoint's (imgcodec.train.training)."""

    @property
    def qualities(self) -> list[int]: ...

    def encode(self, image: np.ndarray, quality: int | None = None) -> Encoded: ...

    def decode_bytes(self, data: bytes) -> np.ndarray: ...


@dataclass(frozen=True)
class LevelResult:
    """Means over the images at one quality."""

    quality: int
    bpp: float  # file bytes per pixel
    bpp_estimate: float  # the prior's cross-entropy per pixel
    psnr: float
    ms_ssim: float | None  # None when not measured

    def to_dict(self) -> dict[str, float | int | None]:
        return {"quality": self.quality, "bpp": round(self.bpp, 4), "bpp_estimate": round(self.bpp_estimate, 4),
                "psnr": round(self.psnr, 3), "ms_ssim": None if self.ms_ssim is None else round(self.ms_ssim, 5)}


def evaluate(codec: EvaluableCodec, images: Sequence[np.ndarray], qualities: Sequence[int] | None = None,
             ms_ssim: bool = False, progress: bool = False) -> list[LevelResult]:
    """Code every image (H,W,3 uint8) at every quality (all of the codec's for None)."""
    if ms_ssim:
        from .metrics import ms_ssim_rgb
    qualities = list(codec.qualities if qualities is None else qualities)
    results = []
    for quality in qualities:
        rows = []
        for rgb in images:
            encoded = codec.encode(rgb, quality)
            decoded = codec.decode_bytes(encoded.data)[..., :3]
            pixels = rgb.shape[0] * rgb.shape[1]
            rows.append((8 * len(encoded.data) / pixels, encoded.estimated_bits / pixels, psnr_rgb(rgb, decoded),
                         ms_ssim_rgb(rgb, decoded) if ms_ssim else 0.0))
        bpp, est, psnr, msssim = np.mean(rows, axis=0)
        results.append(LevelResult(quality, float(bpp), float(est), float(psnr), float(msssim) if ms_ssim else None))
        if progress:
            print(f"q{quality}: {bpp:.4f} bpp, {psnr:.2f} dB", file=sys.stderr)
    return results
