"""Narrow a shae-v9 weights file's 1/2- or 1/4-resolution feature maps (imgcodec.train.pruning).

    python scripts/prune_maps.py checkpoints/shae-v9-training.pt runs/v9-half32-init.pt --keep 32
    python scripts/prune_maps.py checkpoints/shae-v9-training.pt runs/v9-quarter48-init.pt --at quarter --keep 48
    python scripts/train.py --run-dir runs/v9x --init runs/v9-half32-init.pt ...   # as in docs/training.md

Each side keeps the `--keep` channels that carry the most energy into the next layer on random
crops of the training photos, and the cut layers are refitted to the whole model's outputs there;
the script prints, at some levels, the bits per pixel (as the training loss counts them) and the
PSNR on those crops (nearest rounding) before, after the cut alone and after the refit. A
fine-tune with scripts/train.py repairs the rest.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from imgcodec.train.data import load_images, random_crops
from imgcodec.train.pruning import prune_channels
from imgcodec.train.training import save_state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path,
                        help="shae-v9 weights from --save-weights (a run's checkpoint.pt gives its raw weights, not the average)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--keep", type=int, required=True, help="channels to keep in the cut maps on each side")
    parser.add_argument("--at", choices=("half", "quarter"), default="half",
                        help="cut the maps at 1/2 (default) or 1/4 resolution")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--crops", type=int, default=32, help="random training crops to score and refit on (default 32)")
    parser.add_argument("--test-crops", type=int, default=8, help="other random crops to measure on (default 8)")
    parser.add_argument("--crop", type=int, default=256, help="their side, a multiple of 64 (default 256)")
    parser.add_argument("--fit-steps", type=int, default=300, help="Adam steps refitting each side's cut layers (default 300)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 7, 10], help="levels to measure (1-based)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-f", "--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.force:
        raise SystemExit(f"{args.out} exists; use -f to replace it")
    if args.crop < 64 or args.crop % 64 or args.crops < 1 or args.test_crops < 1:
        raise SystemExit("--crop must be a positive multiple of 64 and --crops positive")
    torch.set_num_threads(args.threads)
    state = torch.load(args.source, map_location="cpu", weights_only=False)
    try:
        photos = load_images(args.data / "train")
        crops = random_crops(photos, args.crops, args.crop)
        test_crops = random_crops(photos, args.test_crops, args.crop, seed=1)
        pruned, measured = prune_channels(state, args.keep, crops, test_crops, args.fit_steps,
                                          [lv - 1 for lv in args.levels], args.at)
    except ValueError as exc:
        raise SystemExit(f"{args.source}: {exc}") from exc
    save_state(args.out, pruned, args.force)
    print(f"{args.out}: {args.keep} channels at 1/{2 if args.at == 'half' else 4} resolution, scored and refitted on {len(crops)} crops of "
          f"{args.crop}x{args.crop}, measured on {len(test_crops)} others")
    print("level  bpp before  PSNR before  bpp cut  PSNR cut  bpp refitted  PSNR refitted")
    rows = zip(measured.levels, measured.bpp_before, measured.psnr_before, measured.bpp_cut, measured.psnr_cut,
               measured.bpp_after, measured.psnr_after)
    for level, rate_before, before, rate_cut, cut, rate_after, after in rows:
        print(f"{level + 1:5d}  {rate_before:10.3f}  {before:11.2f}  {rate_cut:7.3f}  {cut:8.2f}  {rate_after:12.3f}  {after:13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
