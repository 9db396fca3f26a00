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
from pathlib import Path

from imgcodec.bench.bdrate import bd_rate_detailed, quality_at_rate
from imgcodec.bench.runner import CodecCurve, read_records_csv, summarize_records

METRICS = {"PSNR": "psnr-rgb", "MS-SSIM dB": "ms-ssim-rgb-db"}  # label -> CodecCurve.metric key


def mean_curve(results_csv: Path, codec: str) -> CodecCurve:
    """One codec's mean curve in a bench run's results.csv (means over images, as the bench
    computes them)."""
    curves = summarize_records(read_records_csv(results_csv))
    if codec not in curves:
        raise SystemExit(f"{results_csv}: no rows for codec {codec!r}")
    return curves[codec]


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
    parser.add_argument("--per-level", action="store_true",
                        help="also print each test level's PSNR lead over the anchor at the same bpp")
    args = parser.parse_args()
    anchor = mean_curve(args.anchor, args.anchor_codec)
    test = mean_curve(args.test, args.test_codec)
    metrics = [args.metric] if args.metric else list(METRICS)
    for metric in metrics:
        within = args.within if (args.metric or metric == "PSNR") else None
        key = METRICS[metric]
        result = bd_rate_detailed(anchor.bpp, anchor.metric(key), test.bpp, test.metric(key), within)
        if result.percent is None:
            print(f"{metric}: undefined ({result.reason})")
        else:
            low, high = result.quality_range
            print(f"{metric}: {result.percent:+.2f} % over {low:.2f}..{high:.2f} dB")
    if args.per_level:
        psnr = test.metric(METRICS["PSNR"])
        for level, (rate, value) in enumerate(zip(test.bpp, psnr), 1):
            theirs = quality_at_rate(anchor.bpp, anchor.metric(METRICS["PSNR"]), rate)
            lead = "outside its rates" if theirs is None else f"{value - theirs:+.2f} dB"
            print(f"level {level}: {rate:.3f} bpp, {value:.2f} dB, PSNR ahead of the anchor: {lead}")


if __name__ == "__main__":
    main()
