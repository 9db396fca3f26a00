"""Tune the encoder's rate-distortion rounding (imgcodec.rounding) per quality level, on training photos.

For every level, every tau of the grid codes the same training crops (through the real coder
and the ONNX decoder). tau = 0 (nearest rounding) gives the reference curve over all levels;
each (level, tau) point is scored by its rate change against that curve at equal PSNR (log bpp
interpolated in PSNR, monotone piecewise-cubic, as the BD-rate does; points beyond the curve's
ends are not scored). Each level keeps the tau with the largest saving, or 0 when none saves. With --write the
result goes into models/NAME/model.json ("rd_rounding"), which `shaec encode` reads; the model
id (the weights' hash) does not change, and files decode exactly as before.

    python scripts/tune_rounding.py --model shae-v8 --write

Validation photos are never used here, so the validation table stays an honest test.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imgcodec.codec import Codec
from imgcodec.coder import encode_symbols
from imgcodec.metrics import psnr_rgb
from imgcodec.training import load_images
from imgcodec.zoo import find_model

DEFAULT_TAUS = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 6e-3, 1e-2, 2e-2)


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


def measure(codec: Codec, crops: list[np.ndarray], taus: list[float]) -> np.ndarray:
    """Mean (bpp of the payload, PSNR) over the crops for every level and tau: levels,taus,2."""
    levels = codec.qualities
    out = np.zeros((len(levels), len(taus), 2))
    prior = codec.model.prior
    with tqdm(total=len(levels) * len(crops), desc="levels x crops", file=sys.stderr) as bar:
        for li, quality in enumerate(levels):
            for rgb in crops:
                latent = codec.latent_of(rgb, quality)
                for ti, tau in enumerate(taus):
                    symbols = codec.symbols_with_tau(latent, quality, tau)
                    bits = 8 * len(encode_symbols(symbols, prior, quality - 1))
                    rec = codec.pixels_of(symbols, quality, rgb.shape[1], rgb.shape[0])
                    out[li, ti] += (bits / (rgb.shape[0] * rgb.shape[1]), psnr_rgb(rgb, rec))
                bar.update(1)
    return out / len(crops)


def choose(stats: np.ndarray, taus: list[float]) -> tuple[list[float], list[float]]:
    """Per level: the tau with the largest rate saving at equal PSNR against tau = 0's curve
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or id (default: the default model)")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--crops", type=int, default=16, help="training photos to crop")
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels")
    parser.add_argument("--taus", type=float, nargs="+", default=list(DEFAULT_TAUS))
    parser.add_argument("--threads", type=int, default=None, help="ONNX threads (default: onnxruntime's)")
    parser.add_argument("--write", action="store_true", help="store the chosen taus in models/NAME/model.json")
    args = parser.parse_args(argv)
    if any(t <= 0 for t in args.taus):
        parser.error("--taus must be positive (tau = 0, nearest rounding, is always measured)")

    info = find_model(args.model)
    codec = Codec(info, threads=args.threads)
    crops = training_crops(args.data / "train", args.crops, args.size)
    taus = [0.0] + sorted(set(args.taus))
    stats = measure(codec, crops, taus)
    best_tau, best_change = choose(stats, taus)
    print(f"{info.name} ({info.model_id}): {len(crops)} training crops of up to {args.size}x{args.size}")
    print("level  nearest bpp  PSNR   best tau  bpp     PSNR   rate change at equal PSNR")
    for li, quality in enumerate(codec.qualities):
        k = taus.index(best_tau[li])
        print(f"{quality:>5}  {stats[li, 0, 0]:.4f}       {stats[li, 0, 1]:.2f}  {best_tau[li]:<8g}  "
              f"{stats[li, k, 0]:.4f}  {stats[li, k, 1]:.2f}  {best_change[li]:+.2f} %")
    if args.write:
        path = info.folder / "model.json"
        meta = json.loads(path.read_text())
        meta["rd_rounding"] = {
            "tau": best_tau, "rate_change_percent_on_training_crops": best_change, "taus_tried": taus,
            "crops": len(crops), "crop_size": args.size,
            "command": "python scripts/tune_rounding.py " + " ".join(argv if argv is not None else sys.argv[1:])}
        path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote rd_rounding to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
