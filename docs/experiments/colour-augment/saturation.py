"""Colour statistics of the photo sets: mean saturation (max - min) / max and mean chroma
(max - min, 8-bit levels) per pixel, averaged per photo and then over the photos of each split.

    python docs/experiments/colour-augment/saturation.py
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def colour_stats(path: Path) -> tuple[float, float]:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    return float(np.mean((high - low) / np.maximum(high, 1))), float(np.mean(high - low))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--splits", nargs="+", default=["train", "val", "detail"])
    args = parser.parse_args()
    print("split   photos  saturation  chroma  photos with chroma > 60")
    for split in args.splits:
        stats = np.array([colour_stats(p) for p in sorted((args.data / split).glob("*.png"))])
        print(f"{split:<8}{len(stats):>6}  {stats[:, 0].mean():>10.3f}  {stats[:, 1].mean():>6.1f}  "
              f"{(stats[:, 1] > 60).mean():>8.0%}")


if __name__ == "__main__":
    main()
