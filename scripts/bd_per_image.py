"""PSNR BD-rate photo by photo: which photos a model wins or loses on, that a mean curve hides.

Each table is an `eval_checkpoint.py --per-image` CSV or a bench results.csv (then name its
codec after a colon); the photos both hold are compared at the levels each has:

    python scripts/eval_checkpoint.py checkpoints/shae-v9-training.pt --split detail \\
        --levels 1 2 4 7 10 --per-image /tmp/v9.csv
    python scripts/bd_per_image.py --anchor docs/bench/detail/results.csv:shaec --test /tmp/v9.csv
"""
from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

from imgcodec.bench.bdrate import bd_rate
from imgcodec.bench.runner import read_records_csv

Curves = dict[str, list[tuple[float, float]]]  # image -> (bpp, PSNR) points


def read_curves(spec: str) -> Curves:
    """'table.csv' or 'results.csv:codec' -> each photo's (bpp, PSNR) points, by rate."""
    path, _, codec = spec.partition(":")
    with open(path, newline="") as handle:
        header = next(csv.reader(handle), [])
    curves: Curves = defaultdict(list)
    if "codec" in header:  # a bench run's results.csv
        if not codec:
            raise SystemExit(f"{path} is a bench results.csv: name the codec, {path}:CODEC")
        for record in read_records_csv(Path(path)):
            if record.codec == codec:
                curves[record.image].append((record.bpp, record.psnr))
        if not curves:
            raise SystemExit(f"{path}: no rows for codec {codec!r}")
    else:  # eval_checkpoint.py --per-image
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                curves[row["image"]].append((float(row["bpp"]), float(row["psnr"])))
    return {image: sorted(points) for image, points in curves.items()}


def per_image(anchor: Curves, test: Curves) -> list[tuple[str, float | None]]:
    """(photo, BD-rate % of test against anchor, None where undefined) for the photos both hold."""
    out = []
    for image in sorted(set(anchor) & set(test)):
        (rate_a, psnr_a), (rate_t, psnr_t) = zip(*anchor[image]), zip(*test[image])
        out.append((image, bd_rate(list(rate_a), list(psnr_a), list(rate_t), list(psnr_t))))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", required=True, help="table.csv, or results.csv:CODEC")
    parser.add_argument("--test", required=True, help="table.csv, or results.csv:CODEC")
    args = parser.parse_args(argv)
    rows = per_image(read_curves(args.anchor), read_curves(args.test))
    if not rows:
        raise SystemExit("the two tables share no photo")
    print(f"BD-rate of {args.test} against {args.anchor}, photo by photo (negative = fewer bits):")
    for image, change in sorted(rows, key=lambda r: (r[1] is None, r[1] or 0.0)):
        print(f"{'undefined' if change is None else f'{change:+8.2f} %':>10}  {image}")
    defined = sorted(change for _, change in rows if change is not None)
    if defined:
        print(f"median {statistics.median(defined):+.2f} % over {len(defined)} photos; "
              f"{sum(c > 0 for c in defined)} lose, {sum(c <= 0 for c in defined)} win or tie")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
