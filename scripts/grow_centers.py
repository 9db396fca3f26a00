"""Give a shae-v9 checkpoint more latent centers outside its outermost ones (imgcodec.train.growth).

    python scripts/grow_centers.py runs/v9g/checkpoint.pt runs/v9h/checkpoint.pt --per-side 10 --spacing 2
    python scripts/train.py --run-dir runs/v9h --save-weights runs/v9h/weights.pt   # resumes, optimizer and all

Also takes weights written by --save-weights (then continue with --init).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from imgcodec.train.growth import grow_latent_centers
from imgcodec.train.training import rewrite_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-side", type=int, default=10, help="new centers below and above (default 10)")
    parser.add_argument("--spacing", type=float, default=2.0, help="distance between new centers (default 2)")
    parser.add_argument("-f", "--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    try:
        grown = rewrite_checkpoint(args.source, args.out, lambda state: grow_latent_centers(
            state, args.per_side, args.spacing), args.force)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    record = grown["grown_centers"]
    print(f"{args.out}: {record['from']} -> {record['to']} latent centers, "
          f"outermost {float(grown['model']['quantizer.centers'].float().min()):.2f} .. "
          f"{float(grown['model']['quantizer.centers'].float().max()):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
