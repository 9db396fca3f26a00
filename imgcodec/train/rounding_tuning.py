"""Tuning of the encoder's rate-distortion rounding (imgcodec.rounding): one tau per level.

For every level, every tau of a grid codes the same training crops (through the real coder and
the ONNX decoder). tau = 0 (nearest rounding) gives the reference curve over all levels; each
(level, tau) point is scored by its rate change against that curve at equal quality (log bpp
interpolated in PSNR, monotone piecewise-cubic, as the BD-rate does; points beyond the curve's
ends are not scored). Each level keeps the tau with the largest saving, or 0 when none saves.
A model tuned for MS-SSIM is scored in MS-SSIM instead (-10 log10(1 - MS-SSIM), in dB), the
metric it was trained for.
For a shae-v9 model scored in PSNR the rounding also weighs each latent channel by what a
change of it costs the decoded image in squared error (channel_costs: the decoder's squared
response to a small change of one channel's input, measured through the shipped decoder on a
quarter of the crops, normalised to a mean of 1): for shae-v11 a unit of the residual stage's
channels costs about nine times one of the first stage's, whose own costs span 22x, where the
squared inverse gains alone treat them alike. The taus are then chosen with those weights in
place.

The result lives in the model's model.json ("rd_rounding": taus, and the channel weights where
measured): an encoder setting, outside the model id. Used by scripts/tune_rounding.py and
scripts/export_model.py --tune-rounding.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..codec import Codec
from ..codec_v9 import ShaeV9Codec
from ..coder import encode_symbols
from ..metrics import ms_ssim_db, ms_ssim_rgb, psnr_rgb
from ..zoo import ModelInfo
from .data import load_images

DEFAULT_TAUS = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 6e-3, 1e-2, 2e-2)
#: quality in dB of a decoded image against its original, by the metric a model was tuned for
METRICS = {"psnr": psnr_rgb, "ms-ssim": lambda a, b: ms_ssim_db(ms_ssim_rgb(a, b))}


def training_crops(train_dir: Path, count: int, size: int) -> list[np.ndarray]:
    """Central size x size crops (or the whole photo if smaller) of `count` training photos spread
    evenly over the sorted list, so the choice is fixed and covers every source."""
    images = load_images(train_dir)
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
    crops = []
    for k in picks:
        image = images[k]
        h, w = image.shape[:2]
        ch, cw = min(h, size), min(w, size)
        crops.append(image[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw])
    return crops


def channel_costs(codec: ShaeV9Codec, crops: list[np.ndarray], level: int, delta: float = 0.1,
                  spacing: int = 6) -> np.ndarray:
    """Per latent channel (M): the squared change of the decoded image (values in [0, 1], summed
    over pixels and colours) per squared change of that channel's decoder input (the center
    times the inverse gain), mean over the crops. Measured by decoding each crop's nearest
    latent at `level` with `delta` added to one channel at every `spacing`-th latent row and
    column: farther apart than most of the decoder's reach, so the changes hardly overlap."""
    costs = np.zeros(codec.gains.shape[1])
    for rgb in crops:
        _, symbols, _ = codec.latents_of(rgb, level)
        decoded = codec.y_centers[symbols] * codec.inverse_gains[level][:, None, None]  # M,h,w
        base = _synthesis(codec, decoded)
        mask = np.zeros(decoded.shape[1:], np.float32)  # h,w
        mask[spacing // 2::spacing, spacing // 2::spacing] = delta
        for channel in range(len(costs)):
            kept = decoded[channel].copy()
            decoded[channel] += mask
            costs[channel] += float(np.sum((_synthesis(codec, decoded) - base).astype(np.float64) ** 2))
            decoded[channel] = kept
    return costs / (len(crops) * np.count_nonzero(mask) * delta ** 2)


def _synthesis(codec: ShaeV9Codec, latent: np.ndarray) -> np.ndarray:
    """The decoder's image 3,H,W (float, before rounding to 8 bits) of a decoder input M,h,w."""
    h, w = latent.shape[1:]
    return np.concatenate([band for _, band in codec.runtime.synthesis_bands(lambda a0, a1: latent[:, a0:a1], h, w)],
                          axis=1)


def measure(codec: Codec | ShaeV9Codec, crops: list[np.ndarray], taus: list[float],
            progress: bool = True, metric: str = "psnr") -> np.ndarray:
    """Mean (bpp of the payload, quality in dB by `metric`, a key of METRICS) over the crops for
    every level and tau: levels,taus,2."""
    quality = METRICS[metric]
    levels = [codec.level_of(q) for q in codec.qualities]
    out = np.zeros((len(levels), len(taus), 2))
    with tqdm(total=len(levels) * len(crops), desc="tuning rounding", file=sys.stderr,
              disable=not progress) as bar:
        for rgb in crops:
            pixels = rgb.shape[0] * rgb.shape[1]
            analysis = codec.analysis(rgb) if isinstance(codec, ShaeV9Codec) else None  # any level's
            for li, level in enumerate(levels):
                for ti, tau in enumerate(taus):
                    bits, rec = _trial(codec, rgb, level, tau, analysis)
                    out[li, ti] += (bits / pixels, quality(rgb, rec))
                bar.update(1)
    return out / len(crops)


def _trial(codec: Codec | ShaeV9Codec, rgb: np.ndarray, level: int, tau: float,
           analysis: np.ndarray | None) -> tuple[int, np.ndarray]:
    """The payload bits and the decoded image of one crop at one level with rounding weight tau."""
    height, width = rgb.shape[:2]
    if isinstance(codec, ShaeV9Codec):
        payload, _, symbols = codec.encode_symbols(rgb, level, 0, tau, analysis)
        return 8 * len(payload), codec.pixels_of(symbols, level, width, height)
    symbols = codec.symbols_with_tau(codec.latent_of(rgb, level), level, tau)
    return 8 * len(encode_symbols(symbols, codec.model.prior, level)), codec.pixels_of(symbols, level, width, height)


def choose(stats: np.ndarray, taus: list[float]) -> tuple[list[float], list[float]]:
    """Per level: the tau with the largest rate saving at equal quality against tau = 0's curve
    (taus[0] must be 0), and that saving in percent (0 where no tau saves). A point whose PSNR
    falls outside that curve's range is not scored: beyond the ends the curve's slope is unknown
    (on the validation photos it steepens towards low rates), so the lowest level can only keep
    taus that cost it no more PSNR than the reference curve spans."""
    from scipy.interpolate import PchipInterpolator

    order = np.argsort(stats[:, 0, 1])
    psnr_curve, log_bpp_curve = stats[order, 0, 1], np.log(stats[order, 0, 0])
    reference = PchipInterpolator(psnr_curve, log_bpp_curve)
    best_tau, best_change = [], []
    for li in range(stats.shape[0]):
        changes = [100 * (np.exp(np.log(bpp) - reference(psnr)) - 1)
                   if psnr_curve[0] <= psnr <= psnr_curve[-1] else np.inf for bpp, psnr in stats[li]]
        k = int(np.argmin(changes))
        best_tau.append(taus[k] if changes[k] < 0 else 0.0)
        best_change.append(round(float(min(changes[k], 0.0)), 3))
    return best_tau, best_change


@dataclass(frozen=True)
class RoundingTuning:
    """What tune() measured and chose; stats[level, tau] = (payload bpp, quality dB) on the crops."""

    taus: list[float]  # the grid, 0 first
    stats: np.ndarray  # levels,taus,2
    best_tau: list[float]  # per level
    best_change: list[float]  # per level, percent (<= 0)
    crops: int
    crop_size: int
    metric: str = "psnr"
    channel_weights: list[float] | None = None  # per latent channel, mean 1 (None: not measured)

    def table(self) -> str:
        """One line per level: nearest rounding's point, the chosen tau's, and the saving."""
        name = "PSNR" if self.metric == "psnr" else "MS-SSIM dB"
        lines = [f"level  nearest bpp  {name}   best tau  bpp     {name}   rate change at equal {name}"]
        for li, (tau, change) in enumerate(zip(self.best_tau, self.best_change)):
            k = self.taus.index(tau)
            lines.append(f"{li + 1:>5}  {self.stats[li, 0, 0]:.4f}       {self.stats[li, 0, 1]:.2f}  {tau:<8g}  "
                         f"{self.stats[li, k, 0]:.4f}  {self.stats[li, k, 1]:.2f}  {change:+.2f} %")
        return "\n".join(lines)


def tune(codec: Codec | ShaeV9Codec, train_dir: Path, count: int = 16, size: int = 256,
         taus: tuple[float, ...] = DEFAULT_TAUS, progress: bool = True, metric: str = "psnr",
         weigh_channels: bool = True) -> RoundingTuning:
    """Measure the grid (plus tau = 0) on `count` training crops and choose a tau per level,
    scored by `metric` (METRICS). Scored in PSNR, a shae-v9 model's channels are first weighed
    by their costs in squared error (channel_costs, on every fourth crop at the middle level; the
    codec keeps the weights) unless weigh_channels is False; otherwise its weights are left as
    they were (for shae-v11-ssim, scored in MS-SSIM, the costs left the detail set's MS-SSIM
    BD-rate unchanged: docs/experiments/rd-weights)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if any(t <= 0 for t in taus):
        raise ValueError("taus must be positive (tau = 0, nearest rounding, is always measured)")
    crops = training_crops(train_dir, count, size)
    weights = None
    if weigh_channels and metric == "psnr" and isinstance(codec, ShaeV9Codec):
        costs = channel_costs(codec, crops[::4], len(codec.qualities) // 2 - 1)
        weights = [round(float(v), 5) for v in costs / costs.mean()]  # as model.json stores them
        codec.channel_weights = np.array(weights)
    grid = [0.0] + sorted(set(taus))
    stats = measure(codec, crops, grid, progress, metric)
    best_tau, best_change = choose(stats, grid)
    return RoundingTuning(grid, stats, best_tau, best_change, len(crops), size, metric, weights)


def write_tuning(info: ModelInfo, tuning: RoundingTuning, command: str) -> Path:
    """Store the chosen taus (and what they were chosen from) in the model's model.json."""
    path = info.folder / "model.json"
    meta = json.loads(path.read_text())
    meta["rd_rounding"] = {
        "tau": tuning.best_tau, "rate_change_percent_on_training_crops": tuning.best_change,
        "taus_tried": tuning.taus, "crops": tuning.crops, "crop_size": tuning.crop_size, "metric": tuning.metric,
        **({} if tuning.channel_weights is None else {"channel_weights": tuning.channel_weights}),
        "command": command}
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path

