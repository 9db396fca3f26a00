"""BD-rate between two bench runs' curves, optionally over a narrower quality range.

`shaec bench` compares codecs within one run. This compares a codec of one run with a codec of
another (for instance two shipped models, from the results.csv that each one's commit kept),
and with ``--within LOW HIGH`` over a chosen PSNR or MS-SSIM dB interval:

    git show 63581a2:docs/bench/results.csv > /tmp/v6.csv
    python scripts/bd_compare.py --anchor /tmp/v6.csv --test docs/bench/results.csv
    python scripts/bd_compare.py --anchor docs/bench/results.csv --anchor-codec jpeg \\
        --test docs/bench/results.csv --within 31.28 40.42
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from imgcodec.bench.bdrate import bd_rate_detailed
from imgcodec.metrics import ms_ssim_db

METRICS = ("PSNR", "MS-SSIM dB")


def mean_curve(results_csv: Path, codec: str) -> dict[str, list[float]]:
    """Mean bpp, PSNR and MS-SSIM dB per quality of one codec (means over images, as the bench
    computes its curves; MS-SSIM dB is taken of the mean MS-SSIM)."""
    groups: dict[int, list[dict[str, str]]] = defaultdict(list)
    with results_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["codec"] == codec:
                groups[int(row["quality"])].append(row)
    if not groups:
        raise SystemExit(f"{results_csv}: no rows for codec {codec!r}")
    curve: dict[str, list[float]] = {"bpp": [], "PSNR": [], "MS-SSIM dB": []}
    for quality in sorted(groups):
        rows = groups[quality]
        curve["bpp"].append(float(np.mean([float(r["bpp"]) for r in rows])))
        curve["PSNR"].append(float(np.mean([float(r["psnr_rgb"]) for r in rows])))
        curve["MS-SSIM dB"].append(ms_ssim_db(float(np.mean([float(r["ms_ssim_rgb"]) for r in rows]))))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--anchor", type=Path, required=True, help="results.csv of the anchor run")
    parser.add_argument("--test", type=Path, required=True, help="results.csv of the test run")
    parser.add_argument("--anchor-codec", default="shaec")
    parser.add_argument("--test-codec", default="shaec")
    parser.add_argument("--within", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                        help="narrow the quality interval (dB of the metric; applies to PSNR only "
                             "unless --metric says otherwise)")
    parser.add_argument("--metric", choices=METRICS, default=None,
                        help="one metric only (default: both, --within applying to PSNR)")
    args = parser.parse_args()
    anchor = mean_curve(args.anchor, args.anchor_codec)
    test = mean_curve(args.test, args.test_codec)
    metrics = [args.metric] if args.metric else list(METRICS)
    for metric in metrics:
        within = args.within if (args.metric or metric == "PSNR") else None
        result = bd_rate_detailed(anchor["bpp"], anchor[metric], test["bpp"], test[metric], within)
        if result.percent is None:
            print(f"{metric}: undefined ({result.reason})")
        else:
            low, high = result.quality_range
            print(f"{metric}: {result.percent:+.2f} % over {low:.2f}..{high:.2f} dB")


if __name__ == "__main__":
    main()
