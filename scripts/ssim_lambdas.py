"""MS-SSIM lambdas that keep a model's levels near their rates: the slope of its own curve.

    python scripts/ssim_lambdas.py docs/bench/detail/results.csv      # -> a JSON list for train.py --lambdas

For a loss lambda * (1 - MS-SSIM) + bpp, a level sits where the rate-distortion curve's slope
-d(bpp)/d(1 - MS-SSIM) equals its lambda. This reads a `shaec bench` results.csv, averages the
shaec rows per level (bpp from file bytes, MS-SSIM over RGB), and gives each level the geometric
mean of the slopes on either side of it (one side at the ends), so that fine-tuning an MSE model
for MS-SSIM (CompressAI's recipe) moves its levels little in rate.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from imgcodec.bench.runner import read_records_csv, summarize_records


def level_means(results: Path, codec: str) -> list[tuple[float, float]]:
    """(bpp, 1 - MS-SSIM) per quality of `codec`, in quality order: the bench's own mean curve."""
    curve = summarize_records(read_records_csv(results)).get(codec)
    if curve is None:
        raise ValueError(f"no rows for codec {codec!r}")
    return [(bpp, 1 - ms_ssim) for _, bpp, ms_ssim in sorted(zip(curve.quality, curve.bpp, curve.ms_ssim))]


def slope_lambdas(points: list[tuple[float, float]]) -> list[float]:
    """Per level, the geometric mean of -d(bpp)/dD on the segments beside it."""
    if len(points) < 2:
        raise ValueError("need at least two levels")
    slopes = []
    for (r0, d0), (r1, d1) in zip(points, points[1:]):
        if not (r1 > r0 and d1 < d0):
            raise ValueError(f"levels must gain rate and lose distortion: ({r0}, {d0}) -> ({r1}, {d1})")
        slopes.append((r1 - r0) / (d0 - d1))
    beside = [[slopes[0]]] + [[a, b] for a, b in zip(slopes, slopes[1:])] + [[slopes[-1]]]
    return [math.exp(sum(math.log(s) for s in pair) / len(pair)) for pair in beside]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results.csv written by shaec bench")
    parser.add_argument("--codec", default="shaec")
    args = parser.parse_args(argv)
    try:
        lambdas = slope_lambdas(level_means(args.results, args.codec))
    except ValueError as exc:
        raise SystemExit(f"{args.results}: {exc}") from exc
    print(json.dumps([float(f"{lam:.3g}") for lam in lambdas]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
