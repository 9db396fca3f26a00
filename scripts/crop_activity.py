"""How much texture training crops carry, per data split and per --flat-crop-activity threshold.

    python scripts/crop_activity.py                          # data/train, data/val, data/detail
    python scripts/crop_activity.py --thresholds 0 8 12      # data/train's crops as train.py draws them

Prints percentiles of imgcodec.train.data.activity (mean absolute difference of neighbouring
pixels, 8-bit levels) over crops drawn as scripts/train.py draws them (by area, seeded), and the
share of nearly flat crops (activity below 4).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from imgcodec.train.data import CropSampler, activity, load_images

PERCENTILES = (10, 25, 50, 75, 90)


def summary(crops: np.ndarray) -> str:
    """Activity percentiles and the share below 4 of N,S,S,3 crops."""
    levels = np.array([activity(crop) for crop in crops])
    cells = "  ".join(f"{v:5.1f}" for v in np.percentile(levels, PERCENTILES))
    return f"{cells}  {np.mean(levels < 4):6.0%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--splits", nargs="+", default=["train", "val", "detail"])
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.0, 12.0],
                        help="--flat-crop-activity values to draw data/train's crops with")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--count", type=int, default=400, help="crops per row")
    args = parser.parse_args()
    header = "  ".join(f"{'p' + str(p):>5}" for p in PERCENTILES)
    print(f"{'crops':<28}{header}  {'<4':>6}")
    for split in args.splits:
        photos = load_images(args.data / split)
        print(f"{split:<28}{summary(CropSampler(photos, args.crop, seed=1).batch(args.count))}")
    photos = load_images(args.data / "train")
    for threshold in args.thresholds:
        if threshold > 0:
            crops = CropSampler(photos, args.crop, seed=1, flat_activity=threshold).batch(args.count)
            print(f"{'train, flat-crop-activity ' + format(threshold, 'g'):<28}{summary(crops)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
