"""Pack random training crops into one uint8 .npy file, for training where data/ is not at hand.

    python scripts/pack_crops.py --data data --size 256 --count 300 --out data/crops-256.npy

300 crops of 256x256 are 59 MB. scripts/train.py --crops FILE trains on them (random sub-crops
and flips of --crop size each step).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from imgcodec.train.data import load_images, pack_crops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    crops = pack_crops(load_images(args.data / "train"), args.size, args.count, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, crops)
    print(f"{args.out}: {crops.shape[0]} crops of {args.size}x{args.size}, {crops.nbytes / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
