"""Diagnostic: rate-distortion optimised rounding (imgcodec.rounding) at one tau for all levels.

Codes validation photos at every level with each tau through the real coder and the ONNX
decoder, and prints per level the rate change at equal PSNR against nearest rounding (tau = 0),
and each tau's BD-rate. --weights chooses the distortion weight per channel: the squared inverse
gain (what the codec uses), or the decoder's sensitivity J_c measured by adding noise to one
channel at a time, with tau in units of 1 / (lambda * 255^2) so that tau = 1 is the training
loss's own trade-off. The shipped taus are tuned on training photos by scripts/tune_rounding.py.

    python docs/experiments/rdoq/rdoq.py --model shae-v7 --taus 0.002 0.005 0.01 0.02
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from imgcodec.bench.bdrate import bd_rate_detailed
from imgcodec.bitstream import container_bytes
from imgcodec.codec import Codec
from imgcodec.coder import encode_symbols
from imgcodec.metrics import psnr_rgb
from imgcodec.rounding import rd_symbols
from imgcodec.training import load_images
from imgcodec.zoo import find_model

def channel_sensitivity(codec: Codec, crops: list[np.ndarray], level: int, step: float = 0.3,
                        seed: int = 0) -> np.ndarray:
    """J_c (C,): pixel squared error (0..1 scale, summed over the image) that the decoder adds per
    unit of squared change of one latent of channel c, in the gained domain where the centers
    live; measured by adding Gaussian noise of std `step` to one channel at a time."""
    rng = np.random.default_rng(seed)
    inverse = codec.model.inverse_gains[level][:, None, None]  # C,1,1
    total = np.zeros(inverse.shape[0])
    for rgb in crops:
        z = codec.latent_of(rgb, level + 1)
        y = codec.model.centers[np.searchsorted(codec.model.thresholds, z)] * inverse  # decoder input
        base = codec.runtime.synthesis(y, level)
        for c in range(y.shape[0]):
            noisy = y.copy()
            noisy[c] += step * inverse[c] * rng.standard_normal(y.shape[1:]).astype(np.float32)
            error = codec.runtime.synthesis(noisy, level) - base
            total[c] += float((error.astype(np.float64) ** 2).sum()) / (step ** 2 * y[c].size)
    return total / len(crops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--taus", type=float, nargs="+", default=[0.002, 0.005, 0.01, 0.02])
    parser.add_argument("--levels", type=int, nargs="+", default=None, help="1-based (default: all)")
    parser.add_argument("--images", type=int, default=None, help="first N validation photos only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-lookahead", action="store_true", help="rd_symbols(lookahead=False): price own bits only")
    parser.add_argument("--weights", choices=("gain", "sensitivity"), default="gain",
                        help="distortion weight per channel: squared inverse gain (tau in latent units), "
                             "or the decoder's measured sensitivity J_c with tau scaled by "
                             "1 / (lambda * 255^2), so that tau = 1 weighs bits as training did")
    args = parser.parse_args()

    codec = Codec(find_model(args.model), threads=args.threads)
    images = load_images(args.data / "val")[:args.images]
    levels = [q - 1 for q in (args.levels or codec.qualities)]
    taus = [0.0] + [t for t in args.taus if t > 0]
    curves = {tau: ([], []) for tau in taus}  # tau -> (bpp per level, PSNR per level)
    sensitivities: dict[int, np.ndarray] = {}
    if args.weights == "sensitivity":
        cache = Path(f"/tmp/rdoq-sensitivity-{codec.model.info.model_id}.npz")
        if cache.exists():
            sensitivities = {int(k): v for k, v in np.load(cache).items()}
        else:
            crops = [rgb[:256, :256] for rgb in load_images(args.data / "train")[:4]]
            sensitivities = {level: channel_sensitivity(codec, crops, level) for level in range(len(codec.qualities))}
            np.savez(cache, **{str(k): v for k, v in sensitivities.items()})
    for level in levels:
        stats = {tau: [] for tau in taus}
        weight, scale = codec.model.inverse_gains[level].astype(np.float64) ** 2, 1.0
        if args.weights == "sensitivity":
            weight = sensitivities[level]
            scale = 1.0 / (codec.model.info.meta["config"]["lambdas"][level] * 255 ** 2)
        for rgb in images:
            z = codec.latent_of(rgb, level + 1)
            for tau in taus:
                symbols = rd_symbols(z, codec.model.centers, codec.model.thresholds, codec.model.prior, level,
                                     weight, tau * scale, not args.no_lookahead)
                n_bytes = len(encode_symbols(symbols, codec.model.prior, level)) + container_bytes()
                rec = codec.pixels_of(symbols, level + 1, rgb.shape[1], rgb.shape[0])
                stats[tau].append((8 * n_bytes / (rgb.shape[0] * rgb.shape[1]), psnr_rgb(rgb, rec)))
        line = [f"q{level + 1}"]
        for tau in taus:
            bpp, psnr = np.mean(stats[tau], axis=0)
            curves[tau][0].append(float(bpp))
            curves[tau][1].append(float(psnr))
            line.append(f"tau {tau:g}: {bpp:.4f} bpp {psnr:.2f} dB")
        print(" | ".join(line), flush=True)
    base_bpp, base_psnr = curves[0.0]
    if len(levels) > 1:
        # Per level: the rate change at equal PSNR, reading tau = 0's bpp at this PSNR off its
        # curve (log bpp interpolated monotonically in PSNR, as the BD-rate does).
        from scipy.interpolate import PchipInterpolator

        base_fit = PchipInterpolator(base_psnr, np.log(base_bpp), extrapolate=True)
        print("rate change at equal PSNR, per level:")
        for k, level in enumerate(levels):
            cells = [f"{100 * (curves[tau][0][k] / np.exp(base_fit(curves[tau][1][k])) - 1):+.2f} %"
                     for tau in taus[1:]]
            print(f"q{level + 1}: " + "  ".join(f"tau {tau:g} {c}" for tau, c in zip(taus[1:], cells)))
    for tau in taus[1:]:
        bd = bd_rate_detailed(base_bpp, base_psnr, *curves[tau])
        shown = "undefined" if bd.percent is None else f"{bd.percent:+.2f} %"
        print(f"tau {tau:g}: BD-rate vs nearest rounding (PSNR) {shown}")


if __name__ == "__main__":
    main()
