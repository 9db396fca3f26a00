"""Rate-distortion rounding with each channel weighted by what its change costs the image.

Runs the rounding's tuning (imgcodec.train.rounding_tuning.tune: the 16 training crops of
`scripts/tune_rounding.py`) with several channel weightings on one model: every channel weighed
by its squared inverse gain alone (as shipped before 0.11.1, "equal"), also by its measured
cost (rounding_tuning.channel_costs, as shipped since: factor 1), and by that cost with the
first stage's channels scaled by another factor (their rounding errors are partly made up by
the residual stage, taken against them). Prints each tuning's per-level table; --write F stores
the tuning with first-stage factor F (0: equal) in the model's model.json, for `shaec bench`.

    python docs/experiments/rd-weights/compare.py --model shae-v11 --factors 0 1 0.5 2
    python docs/experiments/rd-weights/compare.py --model shae-v11 --factors 2 --write 2
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from imgcodec.codec import get_codec
from imgcodec.train.rounding_tuning import channel_costs, tune, training_crops, write_tuning
from imgcodec.zoo import find_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shae-v11")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--factors", type=float, nargs="+", default=[0.0, 1.0, 0.5, 2.0],
                        help="first-stage factors of the measured costs (0: every channel equal)")
    parser.add_argument("--write", type=float, default=None, metavar="F",
                        help="store the tuning of first-stage factor F in the model's model.json")
    args = parser.parse_args()
    codec = get_codec(args.model)
    crops = training_crops(args.data / "train", 16, 256)
    costs = channel_costs(codec, crops[::4], len(codec.qualities) // 2 - 1)
    first = codec.transform_channels
    print(f"channel costs: first stage min {costs[:first].min():.3g} median {np.median(costs[:first]):.3g} "
          f"max {costs[:first].max():.3g}; residual stage min {costs[first:].min():.3g} "
          f"median {np.median(costs[first:]):.3g} max {costs[first:].max():.3g}")
    for factor in args.factors:
        weights = np.ones_like(costs)
        if factor:
            weights = costs.copy()
            weights[:first] *= factor
            weights = np.round(weights / weights.mean(), 5)
        codec.channel_weights = weights
        tuning = tune(codec, args.data / "train", progress=False, weigh_channels=False)
        print(f"first-stage factor {factor:g}" + (" (every channel equal)" if not factor else ""))
        print(tuning.table(), flush=True)
        if args.write is not None and factor == args.write:
            if factor:
                tuning = dataclasses.replace(tuning, channel_weights=[float(v) for v in weights])
            write_tuning(find_model(args.model), tuning, f"docs/experiments/rd-weights/compare.py --write {factor:g}")


if __name__ == "__main__":
    main()
