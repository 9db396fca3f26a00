"""Is retaking the residual after the first stage's rounding worth its second synthesis? The same
training crops and taus as scripts/tune_rounding.py, coded with the residual retaken (the codec)
and with the residual of the nearest first stage kept (a subclass here), at a few levels.

    SHAEC_MODELS_DIR=FOLDER python docs/experiments/rd-rounding-v9/refresh.py --levels 3 6 9
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from imgcodec.codec_v9 import ShaeV9Codec
from imgcodec.hyperprior import HyperpriorTables
from imgcodec.metrics import psnr_rgb
from imgcodec.rounding import rd_choice
from imgcodec.train.rounding_tuning import training_crops
from imgcodec.zoo import find_model


class KeptResidual(ShaeV9Codec):
    """Rate-distortion rounding that keeps the residual of the nearest-rounded first stage."""

    def encode_symbols(self, rgb, level, step=0, tau=0.0, latent=None):  # type: ignore[no-untyped-def]
        y, y_symbols, z_symbols = self.latents_of(rgb, level, step, latent)
        weights = self._gains(self.inverse_gains, level, step).astype(np.float64) ** 2

        def choose(start, rows, mask, chosen):  # type: ignore[no-untyped-def]
            end = start + rows.shape[0]
            return rd_choice(y[start:end], y_symbols[start:end], self._y_centers64, weights[start:end], tau,
                             self.tables.y_rows, rows)

        return HyperpriorTables.encode_choosing(self.tables, y_symbols, z_symbols, choose if tau > 0 else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[3, 6, 9])
    parser.add_argument("--taus", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3])
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args()
    info = find_model("shae-v9")
    crops = training_crops(args.data / "train", 16, 256)
    codecs = {"retaken": ShaeV9Codec(info), "kept": KeptResidual(info)}
    print("| level | tau | variant | bpp | PSNR | encode s |")
    print("|---:|---:|---|---:|---:|---:|")
    for level in args.levels:
        for tau in [0.0] + args.taus:
            for name, codec in codecs.items():
                if tau == 0 and name == "kept":
                    continue
                bpp = psnr = seconds = 0.0
                for rgb in crops:
                    started = time.perf_counter()
                    payload, _, symbols = codec.encode_symbols(rgb, level - 1, 0, tau)
                    seconds += time.perf_counter() - started
                    bpp += 8 * len(payload) / (rgb.shape[0] * rgb.shape[1])
                    psnr += psnr_rgb(rgb, codec.pixels_of(symbols, level - 1, rgb.shape[1], rgb.shape[0]))
                n = len(crops)
                print(f"| {level} | {tau:g} | {'nearest' if tau == 0 else name} | {bpp / n:.4f} | {psnr / n:.3f} | {seconds / n:.3f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
