"""shae-v9's rate-distortion rounding on the detail photos: nearest centers against the model's
tuned taus (model.json "rd_rounding", chosen on training crops), real files, and both against
shae-v8's committed bench run at each level's own rate.

    SHAEC_MODELS_DIR=FOLDER python docs/experiments/rd-rounding-v9/measure.py --levels 1 2 3 4 5 7 10 \
        --out docs/experiments/rd-rounding-v9/results/detail.csv
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imgcodec.bench.bdrate import bd_rate, quality_at_rate
from imgcodec.bench.runner import read_records_csv, summarize_records
from imgcodec.bitstream import unpack
from imgcodec.codec import get_codec
from imgcodec.imageio import load_image
from imgcodec.metrics import psnr_rgb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shae-v9")
    parser.add_argument("--photos", type=Path, default=Path("data/detail"))
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4, 5, 7, 10])
    parser.add_argument("--anchors", type=Path, default=Path("docs/bench/detail/results.csv"))
    parser.add_argument("--out", type=Path, required=True, help="per-image CSV")
    args = parser.parse_args()
    codec = get_codec(args.model)
    print(f"{args.model}: rd taus {list(map(float, codec.rd_tau))}")
    paths = sorted(args.photos.glob("*.png"))
    rows = []
    with tqdm(total=len(args.levels) * len(paths), file=sys.stderr) as bar:
        for level in args.levels:
            for path in paths:
                rgb = load_image(path).rgb
                for rounding in ("nearest", "rd"):
                    data = codec.encode(rgb, level, rounding).data
                    decoded = codec.decode(unpack(data))
                    rows.append({"rounding": rounding, "level": level, "image": path.name,
                                 "bpp": 8 * len(data) / (rgb.shape[0] * rgb.shape[1]),
                                 "psnr": psnr_rgb(rgb, decoded)})
                bar.update(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    v8 = summarize_records(read_records_csv(args.anchors))["shaec"]
    v8_rates, v8_psnr = v8.bpp, v8.psnr
    curves = {}
    print("| level | nearest bpp | PSNR | lead vs shae-v8 dB | rd bpp | PSNR | lead vs shae-v8 dB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for level in args.levels:
        cells = [str(level)]
        for rounding in ("nearest", "rd"):
            at = [r for r in rows if r["rounding"] == rounding and r["level"] == level]
            bpp, psnr = float(np.mean([r["bpp"] for r in at])), float(np.mean([r["psnr"] for r in at]))
            curves.setdefault(rounding, []).append((bpp, psnr))
            ref = quality_at_rate(v8_rates, v8_psnr, bpp)
            cells += [f"{bpp:.4f}", f"{psnr:.3f}", "" if ref is None else f"{psnr - ref:+.3f}"]
        print("| " + " | ".join(cells) + " |")
    near, rd = np.array(curves["nearest"]), np.array(curves["rd"])
    print(f"PSNR BD-rate of rd against nearest: {bd_rate(near[:, 0], near[:, 1], rd[:, 0], rd[:, 1]):+.2f} %")
    for name, curve in (("nearest", near), ("rd", rd)):
        print(f"PSNR BD-rate of {name} against shae-v8: {bd_rate(v8_rates, v8_psnr, curve[:, 0], curve[:, 1]):+.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
