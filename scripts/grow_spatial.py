"""Give a shae-v9 weights file a spatial (checkerboard) context in every channel group (imgcodec.train.growth).

    python scripts/grow_spatial.py checkpoints/shae-v9-training.pt runs/v9-spatial-init.pt --features 32
    python scripts/train.py --run-dir runs/v9s --init runs/v9-spatial-init.pt ...   # as in docs/training.md

The new context starts silent (the heads read it through zero weights), so the grown model codes
exactly as the source until training teaches it; the script checks that on a few crops.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from imgcodec.train.growth import grow_spatial_context
from imgcodec.train.training import load_model, rewrite_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="shae-v9 weights (from --save-weights, or a run's checkpoint.pt)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--features", type=int, default=32, help="spatial context features per group (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new convolutions' initialisation")
    parser.add_argument("-f", "--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    try:
        rewrite_checkpoint(args.source, args.out, lambda state: grow_spatial_context(state, args.features, args.seed),
                           args.force)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    old, _ = load_model(args.source)
    new, _ = load_model(args.out)
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(args.seed))
    level = torch.tensor([0, old.cfg.num_levels - 1])
    with torch.no_grad():
        change = float((old(x, level)["bits"] - new(x, level)["bits"]).abs().max())
    print(f"{args.out}: a spatial context of {args.features} features in each of {len(new.cfg.groups)} groups; "
          f"rate on 2 random crops changed by {change:.2g} bits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
