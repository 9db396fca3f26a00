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

import torch

from imgcodec.train.data import load_images, random_crops
from imgcodec.train.entropy_fit import coded_bpp, crop_latents, fit_entropy_model
from imgcodec.train.growth import grow_spatial_context
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.training import load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 7, 10], help="1-based")
    parser.add_argument("--train-crops", type=int, default=64)
    parser.add_argument("--test-crops", type=int, default=24)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    levels = [level - 1 for level in args.levels]
    model, state = load_model(args.checkpoint)
    start = time.time()
    train = crop_latents(model, random_crops(load_images(args.data / "train"), args.train_crops, 256), levels)
    test = crop_latents(model, random_crops(load_images(args.data / "detail"), args.test_crops, 256, seed=1), levels)
    print(f"latents of {args.train_crops} training and {args.test_crops} detail crops at levels {args.levels}: "
          f"{time.time() - start:.0f} s")
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
