"""Pack random training crops for training where data/ is not at hand (a GPU machine).

    python scripts/pack_crops.py --data data --size 256 --count 300 --out data/crops-256.npy
    python scripts/pack_crops.py --data data --size 512 --count 180 --flat-crop-activity 12 \\
        --tiles gpu-data/train

300 crops of 256x256 are 59 MB as one uint8 .npy (scripts/train.py --crops FILE). --tiles
writes lossless WebP tiles instead, 0.28 MB per 512x512 tile on data/train (2.9x smaller than
raw), for scripts/train.py --data (a folder with train/ in it).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from imgcodec.train.data import load_images, pack_crops, pack_tiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flat-crop-activity", type=float, default=0.0,
                        help="thin out flat crops as training does (--tiles only)")
    output = parser.add_mutually_exclusive_group(required=True)
    output.add_argument("--out", type=Path, help="one N,S,S,3 uint8 .npy file")
    output.add_argument("--tiles", type=Path, help="a folder of lossless WebP tiles")
    args = parser.parse_args(argv)
    photos = load_images(args.data / "train")
    if args.tiles:
        written = pack_tiles(photos, args.size, args.count, args.tiles, args.seed, args.flat_crop_activity)
        print(f"{args.tiles}: {args.count} tiles of {args.size}x{args.size}, {written / 1e6:.1f} MB")
        return 0
    crops = pack_crops(photos, args.size, args.count, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, crops)
    print(f"{args.out}: {crops.shape[0]} crops of {args.size}x{args.size}, {crops.nbytes / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
