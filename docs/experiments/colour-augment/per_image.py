"""Per-photo PSNR BD-rates of an installed model against the shae-v8 and WebP rows of a bench
run, through real files (levels 1, 2, 4 and 6: the low and middle rates).

    python docs/experiments/colour-augment/per_image.py --model shae-v9
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

import imgcodec.codec as codec_api
from imgcodec.bench.bdrate import bd_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shae-v9")
    parser.add_argument("--split", type=Path, default=Path("data/detail"))
    parser.add_argument("--anchors", type=Path, default=Path("docs/bench/detail/results.csv"))
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 6])
    args = parser.parse_args()
    codec = codec_api.get_codec(args.model)
    with open(args.anchors) as fh:
        rows = list(csv.DictReader(fh))
    print(f"{'photo':<60}{'vs shae-v8':>12}{'vs WebP':>10}")
    for path in sorted(args.split.glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        rates, psnrs = [], []
        for level in args.levels:
            data = codec.encode(rgb, level).data
            error = codec_api.decompress(data).astype(np.float64) - rgb
            rates.append(8 * len(data) / (rgb.shape[0] * rgb.shape[1]))
            psnrs.append(10 * np.log10(255.0 ** 2 / np.mean(error ** 2)))
        against = {}
        for name in ("shaec", "webp"):
            curve = sorted((float(r["bpp"]), float(r["psnr_rgb"])) for r in rows
                           if r["image"] == path.name and r["codec"] == name)
            against[name] = bd_rate([c[0] for c in curve], [c[1] for c in curve], rates, psnrs)
        print(f"{path.name:<60}{against['shaec']:>+11.2f}%{against['webp']:>+9.2f}%", flush=True)


if __name__ == "__main__":
    main()
