"""Give a shae-v9 weights file a residual stage (imgcodec.train.growth.grow_detail_stage).

    python scripts/grow_detail.py checkpoints/shae-v9-training.pt runs/v9-detail-init.pt --channels 128
    python scripts/train.py --run-dir runs/v9d --init runs/v9-detail-init.pt ...   # as in docs/training.md

The residual stage starts from the principal components of the top level's residual on random
crops of the training photos; the script prints, per level, the bits per pixel (as the training
loss counts them) and the PSNR on those crops before and after (nearest rounding, the new
stage's symbols included), and how many of its symbols are not zero.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from imgcodec.train.data import load_images, random_crops
from imgcodec.train.growth import grow_detail_stage
from imgcodec.train.training import save_state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path,
                        help="shae-v9 weights from --save-weights (a run's checkpoint.pt gives its raw weights, not the average)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--channels", type=int, default=128, help="the residual stage's channels (default 128)")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--crops", type=int, default=96, help="random training crops to fit it on (default 96)")
    parser.add_argument("--crop", type=int, default=256, help="their side, a multiple of 64 (default 256)")
    parser.add_argument("--scale-init", type=float, default=0.2,
                        help="the scale its entropy model starts with, times the centers' spacing at zero (default 0.2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-f", "--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.force:
        raise SystemExit(f"{args.out} exists; use -f to replace it")
    if args.crop < 64 or args.crop % 64 or args.crops < 1:
        raise SystemExit("--crop must be a positive multiple of 64 and --crops positive")
    torch.set_num_threads(args.threads)
    state = torch.load(args.source, map_location="cpu", weights_only=False)
    try:
        crops = random_crops(load_images(args.data / "train"), args.crops, args.crop)
        grown, measured = grow_detail_stage(state, args.channels, crops, args.scale_init)
    except ValueError as exc:
        raise SystemExit(f"{args.source}: {exc}") from exc
    save_state(args.out, grown, args.force)
    print(f"{args.out}: a residual stage of {args.channels} channels, fitted on {len(crops)} crops "
          f"of {args.crop}x{args.crop}")
    print("level  bpp before  PSNR before  bpp after  PSNR after  non-zero symbols %")
    rows = zip(measured.bpp_before, measured.psnr_before, measured.bpp_after, measured.psnr_after,
               measured.nonzero_share)
    for level, (rate_before, before, rate_after, after, share) in enumerate(rows, start=1):
        print(f"{level:5d}  {rate_before:10.3f}  {before:11.2f}  {rate_after:9.3f}  {after:10.2f}  {100 * share:18.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
