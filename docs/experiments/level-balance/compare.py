"""PSNR BD-rates between the curves in results/ (eval_checkpoint.py --out tables): each arm of the
level-balance trial against the starting weights and against each other, over all levels and
over the low and the high ones.

    python docs/experiments/level-balance/compare.py
"""
from __future__ import annotations

import csv
from pathlib import Path

from imgcodec.bench.bdrate import bd_rate

HERE = Path(__file__).resolve().parent / "results"


def curve(name: str) -> tuple[list[float], list[float]]:
    with open(HERE / f"{name}.csv") as fh:
        rows = list(csv.DictReader(fh))
    return [float(r["bpp"]) for r in rows], [float(r["psnr"]) for r in rows]


def main() -> None:
    base, plain, balance = curve("base"), curve("plain"), curve("balance")
    print(f"plain vs start:    {bd_rate(*base, *plain):+.2f} %")
    print(f"balance vs start:  {bd_rate(*base, *balance):+.2f} %")
    print(f"balance vs plain:  {bd_rate(*plain, *balance):+.2f} %")
    low = slice(0, 3)  # levels 1, 2, 4
    high = slice(2, None)  # levels 4, 7, 10
    for name, part in (("levels 1-4", low), ("levels 4-10", high)):
        print(f"balance vs plain, {name}: {bd_rate(plain[0][part], plain[1][part], balance[0][part], balance[1][part]):+.2f} %")


if __name__ == "__main__":
    main()
