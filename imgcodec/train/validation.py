"""The validation table a model ships with (manifest.json's "validation", `shaec models`): every
level of the model on the validation photos as real files, beside Pillow's JPEG at the same bpp.
Written by scripts/export_model.py, and again by scripts/tune_rounding.py --write, since the
encoder's rounding moves every point of it."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..bench.codecs import get_codecs
from ..evaluation import evaluate
from ..metrics import ms_ssim_rgb, psnr_rgb


def jpeg_curve(images: list[np.ndarray]) -> list[tuple[float, float, float]]:
    """(bpp, psnr, ms-ssim) of Pillow JPEG 4:2:0 at qualities 5..95, mean over images, by bpp."""
    jpeg = get_codecs(["jpeg"])[0]
    curve = []
    for quality in range(5, 96, 5):
        stats = []
        for rgb in images:
            data = jpeg.encode(rgb, quality)
            rec = jpeg.decode(data, rgb.shape[1], rgb.shape[0])
            stats.append((8 * len(data) / (rgb.shape[0] * rgb.shape[1]), psnr_rgb(rgb, rec), ms_ssim_rgb(rgb, rec)))
        curve.append(tuple(np.mean(stats, axis=0)))
    return sorted(curve)


def validation_entry(codec: Any, images: list[np.ndarray], progress: bool = True) -> dict[str, Any]:
    """{"images", "rounding", "levels"}: each level's mean bpp (file bytes), estimate, PSNR and
    MS-SSIM over the images, with JPEG's PSNR and MS-SSIM at that bpp (interpolated)."""
    levels = [r.to_dict() for r in evaluate(codec, images, ms_ssim=True, progress=progress)]
    jpeg = jpeg_curve(images)
    bpps = [c[0] for c in jpeg]
    for row in levels:
        row["jpeg_psnr_at_bpp"] = round(float(np.interp(row["bpp"], bpps, [c[1] for c in jpeg])), 3)
        row["jpeg_ms_ssim_at_bpp"] = round(float(np.interp(row["bpp"], bpps, [c[2] for c in jpeg])), 5)
    rounding = "rd" if np.any(codec.rd_tau > 0) else "nearest"
    return {"images": len(images), "rounding": rounding, "levels": levels}
