"""PSNR BD-rate of one eval_checkpoint.py --out table against another: over all levels, over
the first three (the low rates) and over the last three (the high rates).

    python docs/experiments/level-balance/compare.py docs/experiments/level-balance/results/plain.csv \
        docs/experiments/level-balance/results/balance.csv
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from imgcodec.bench.bdrate import bd_rate


def curve(path: Path) -> tuple[list[float], list[float]]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return [float(r["bpp"]) for r in rows], [float(r["psnr"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("anchor", type=Path)
    parser.add_argument("test", type=Path)
    args = parser.parse_args()
    (rate_a, psnr_a), (rate_t, psnr_t) = curve(args.anchor), curve(args.test)
    print(f"{args.test.stem} vs {args.anchor.stem}: {bd_rate(rate_a, psnr_a, rate_t, psnr_t):+.2f} % over all levels")
    for name, part in (("the first three levels", slice(0, 3)), ("the last three levels", slice(-3, None))):
        change = bd_rate(rate_a[part], psnr_a[part], rate_t[part], psnr_t[part])
        print(f"{args.test.stem} vs {args.anchor.stem}: {change:+.2f} % over {name}")


if __name__ == "__main__":
    main()
