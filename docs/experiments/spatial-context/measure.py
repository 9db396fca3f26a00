"""What a spatial (checkerboard) context would save shae-v9, with its transforms fixed.

    python docs/experiments/spatial-context/measure.py runs/v9-55750.pt --features 32 --train-crops 384 --steps 1500

The latents of random 256x256 crops of data/train (to fit on) and of data/detail (to measure on)
are computed once at some levels, with nearest rounding, as the codec codes them. Then two
copies of the entropy model are trained on the training latents for the same steps, Adam at the
run's learning rate, the bits as the loss: the model as it is, and the model with a spatial
context grown onto it (imgcodec.train.growth.grow_spatial_context). The transforms and the
images stay fixed, so a difference in bits is a difference at equal distortion. Both are
measured on the detail latents as real payloads through the integer entropy model
(HyperpriorTables.encode), before and after.
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path


from imgcodec.train.entropy_fit import add_fit_arguments, coded_bpp, experiment_latents, fit_entropy_model
from imgcodec.train.growth import grow_spatial_context
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.training import load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--features", type=int, default=32)
    add_fit_arguments(parser, train_crops=64, steps=1000, lr=1e-4)
    args = parser.parse_args()
    model, state = load_model(args.checkpoint)
    levels, train, test = experiment_latents(model, args)
    grown_state = grow_spatial_context({**state, "model": model.state_dict()}, args.features)
    spatial = ShaeV9(type(model.cfg).from_dict(grown_state["model_config"]))
    spatial.load_state_dict(grown_state["model"])
    plain = copy.deepcopy(model)
    before = coded_bpp(model, test, levels)
    results = {}
    for name, arm in (("as it is", plain), (f"spatial context, {args.features} features", spatial)):
        start = time.time()
        fit_entropy_model(arm, train, args.steps, args.lr, args.batch, seed=0)
        results[name] = coded_bpp(arm, test, levels)
        print(f"{name}: {args.steps} steps in {time.time() - start:.0f} s")
    print(f"\nreal bpp on {args.test_crops} detail crops (256x256), entropy model trained {args.steps} steps:")
    names = list(results)
    print("| level | before | " + " | ".join(names) + " | change |")
    print("|---:|---:|" + "---:|" * len(names) + "---:|")
    for level in levels:
        a, b = (results[name][level] for name in names)
        print(f"| {level + 1} | {before[level]:.4f} | {a:.4f} | {b:.4f} | {100 * (b / a - 1):+.2f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
