"""Build the residual stage (imgcodec.detail_stage) of a shipped shae-v8-layout model from
training crops: no gradient training, every number is measured.

- The basis: principal components of the top level's residual blocks (the KLT of what the
  model's decoded image misses), largest first.
- The step of each level: the high-rate optimum of the model's own loss lambda x 255^2 x MSE +
  bpp (imgcodec.train.growth.detail_step), times a factor; per level the factor, or no stage,
  that gives the lowest loss on the crops (so a level keeps the stage only where it pays).
- The tables: for each level, activity context and channel, the mean absolute rounded-to
  coefficient (in steps) picks the nearest of the Laplacian tables' scales.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..codec import Codec
from ..config import DOWNSCALE
from ..detail_stage import (ACTIVITY_BINS, BLOCK, LIMIT, VALUES, DetailStage, block_activity, laplace_tables,
                            scale_grid, to_blocks)
from .growth import detail_step


@dataclass(frozen=True)
class StageFit:
    """What the fit measured on its crops, per level (0-based order): the chosen step factor (0 =
    no stage), the base model's PSNR and bits per pixel (real payload bytes), and the stage's
    PSNR and bits per pixel (its tables' code length) with that factor."""

    factors: tuple[float, ...]
    base_psnr: tuple[float, ...]
    base_bpp: tuple[float, ...]
    psnr: tuple[float, ...]
    bpp: tuple[float, ...]


def _psnr(mse: float) -> float:
    return 10 * math.log10(1 / max(mse, 1e-12))


def _pad(image: np.ndarray) -> np.ndarray:
    """H,W,3 -> padded with zeros to multiples of BLOCK."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, -h % BLOCK), (0, -w % BLOCK), (0, 0)))


def fit_detail_stage(codec: Codec, crops: Sequence[np.ndarray], channels: int = 128,
                     factors: Sequence[float] = (0.7, 1.0, 1.4, 2.0, 2.8), deadzone: float = 0.15) -> tuple[DetailStage, StageFit]:
    """The residual stage of `codec`'s model, fitted on `crops` (H,W,3 uint8)."""
    lambdas = codec.info.meta["config"]["lambdas"]
    zero = int(np.abs(codec.model.centers).argmin())
    cells = BLOCK // DOWNSCALE
    per_level = []  # (residual blocks N,hb,wb,VALUES, activity N,hb,wb, base bits, base squared error)
    for level in range(len(lambdas)):
        blocks, activity, bits, error = [], [], 0.0, 0.0
        for crop in crops:
            rgb = np.ascontiguousarray(crop[..., :3])
            symbols = codec.symbols_of(rgb, level)
            payload, _ = codec._symbols_payload(symbols, level)
            first = codec.pixels_of(symbols, level, rgb.shape[1], rgb.shape[0])
            residual = _pad((rgb.astype(np.float32) - first) / 255.0)
            blocks.append(to_blocks(residual))
            activity.append(block_activity(symbols, zero, *blocks[-1].shape[:2], cells))
            bits += 8 * len(payload)
            error += float((residual.astype(np.float64) ** 2).sum())
        per_level.append((np.stack(blocks), np.stack(activity), bits, error))
    pixels = sum(c.shape[0] * c.shape[1] for c in crops)
    values = 3 * pixels  # the loss takes the mean over values (MSE), the rate per pixel
    top = per_level[-1][0].reshape(-1, VALUES).astype(np.float64)
    _, vectors = np.linalg.eigh(top.T @ top / len(top))
    basis = vectors[:, ::-1][:, :channels].T.astype(np.float32)  # D,VALUES, largest first
    grid = np.log(scale_grid())
    tables = laplace_tables(scale_grid())
    steps, table_ids, report = [], [], []
    for level, (blocks, activity, base_bits, base_error) in enumerate(per_level):
        coefficients = blocks @ basis.T  # N,hb,wb,D
        lam = lambdas[level] * 255 ** 2
        best = (lam * base_error / values + base_bits / pixels, 0.0, np.zeros((ACTIVITY_BINS, channels), np.uint8),
                base_error, 0.0)
        for factor in factors:
            step = detail_step(lambdas[level], BLOCK) * factor
            scaled = coefficients / step
            symbols = np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5 - deadzone), -LIMIT, LIMIT)
            ids = np.zeros((ACTIVITY_BINS, channels), dtype=np.uint8)
            for bin_ in range(ACTIVITY_BINS):
                chosen = activity == bin_
                count = chosen.sum()
                mean_abs = (np.abs(symbols[chosen]).sum(axis=0) + 0.1) / (count + 1)  # D, smoothed
                ids[bin_] = np.abs(grid[:, None] - np.log(mean_abs)[None, :]).argmin(axis=0)
            counts = tables[ids[activity][..., np.arange(channels)], symbols.astype(np.int64) + LIMIT]
            stage_bits = float(-np.log2(counts / 65536.0).sum())
            error = float(((blocks - (symbols * step).astype(np.float32) @ basis) ** 2).sum())
            loss = lam * error / values + (base_bits + stage_bits) / pixels
            if loss < best[0]:
                best = (loss, factor, ids, error, stage_bits)
        _, factor, ids, error, stage_bits = best
        steps.append(detail_step(lambdas[level], BLOCK) * factor if factor else 0.0)
        table_ids.append(ids)
        report.append((factor, _psnr(base_error / (3 * pixels)), base_bits / pixels,
                       _psnr(error / (3 * pixels)), (base_bits + stage_bits) / pixels))
    stage = DetailStage(basis, np.asarray(steps, dtype=np.float32), deadzone, np.stack(table_ids), tables)
    return stage, StageFit(*(tuple(float(r[i]) for r in report) for i in range(5)))
