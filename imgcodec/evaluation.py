"""One evaluation loop, shared by export, training validation, checkpoint evaluation and scripts.

Each image is encoded to real bytes and decoded again; the rate is those bytes per pixel, next
to the coder's estimate, and quality is PSNR (and optionally MS-SSIM) of the decoded 8-bit image.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence

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


@dataclass(frozen=True)
class ImageResult:
    """One image at one quality: which photos a model wins or loses on, that means hide."""

    quality: int
    image: int  # index into the images evaluated
    bpp: float
    bpp_estimate: float
    psnr: float
    ms_ssim: float | None


def evaluate_images(codec: EvaluableCodec, images: Sequence[np.ndarray], qualities: Sequence[int] | None = None,
                    ms_ssim: bool = False) -> Iterator[ImageResult]:
    """Code every image (H,W,3 uint8) at every quality (all of the codec's for None), quality by
    quality, and yield each image's result."""
    if ms_ssim:
        from .metrics import ms_ssim_rgb
    for quality in list(codec.qualities if qualities is None else qualities):
        for index, rgb in enumerate(images):
            encoded = codec.encode(rgb, quality)
            decoded = codec.decode_bytes(encoded.data)[..., :3]
            pixels = rgb.shape[0] * rgb.shape[1]
            yield ImageResult(quality, index, 8 * len(encoded.data) / pixels, encoded.estimated_bits / pixels,
                              psnr_rgb(rgb, decoded), ms_ssim_rgb(rgb, decoded) if ms_ssim else None)


def mean_by_level(rows: Sequence[ImageResult]) -> list[LevelResult]:
    """Per-image results -> the means over the images at each quality, in the order met."""
    results = []
    for quality in dict.fromkeys(r.quality for r in rows):
        at = [r for r in rows if r.quality == quality]
        measured = at[0].ms_ssim is not None
        results.append(LevelResult(quality, float(np.mean([r.bpp for r in at])),
                                   float(np.mean([r.bpp_estimate for r in at])), float(np.mean([r.psnr for r in at])),
                                   float(np.mean([r.ms_ssim for r in at])) if measured else None))
    return results


def evaluate(codec: EvaluableCodec, images: Sequence[np.ndarray], qualities: Sequence[int] | None = None,
             ms_ssim: bool = False, progress: bool = False) -> list[LevelResult]:
    """Means over the images at every quality (evaluate_images)."""
    rows: list[ImageResult] = []
    for row in evaluate_images(codec, images, qualities, ms_ssim):
        rows.append(row)
        if progress and row.image == len(images) - 1:
            level = mean_by_level([r for r in rows if r.quality == row.quality])[0]
            print(f"q{level.quality}: {level.bpp:.4f} bpp, {level.psnr:.2f} dB", file=sys.stderr)
    return mean_by_level(rows)
