"""How coarse can shae-v9's integer networks (the entropy model's decoder side) be, if they are
trained for it? Post-training rounding against quantisation-aware fine-tuning, transforms fixed.

    python docs/experiments/entropy-qat/measure.py checkpoints/shae-v11.pt --steps-per-rms 4 2 --steps 1500

The integer networks (hyper-synthesis, each group's context and parameter network) are exported
with weight steps 2^-s, the largest power of two at most RMS / k (imgcodec.train.integer_export,
`--integer-steps k`); the shipped models use k = 16. Their weights are most of hyperprior.npz. For
each k this measures, on the latents of data/detail crops coded as real payloads
(HyperpriorTables.encode), against the checkpoint exported at k = 16:

- "rounded": the checkpoint exported at k (post-training quantisation);
- "fine-tuned": the entropy model trained further on latents of data/train crops, the bits as the
  loss, each integer layer's weights rounded to its step of k in the forward pass (straight
  through: the gradient reaches the float weights unrounded), then exported at k;
- "fine-tuned, not rounded": the same training without rounding, exported at k = 16: how much of
  the change is the training itself (a short fit on few crops drifts; docs/experiments/spatial-context).

The transforms and the images stay fixed (the latents come from the checkpoint's analysis, nearest
rounding), so every difference is one of rate at equal distortion. Sizes are those of the
hyperprior.npz that HyperpriorTables.save writes.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from imgcodec.train.entropy_fit import Latents, add_fit_arguments, coded_bpp, experiment_latents, fit_entropy_model
from imgcodec.train.integer_export import weight_scale_bits
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.training import load_model


def integer_convolutions(model: ShaeV9) -> list[nn.Module]:
    """The layers frozen_tables exports as integer layers."""
    layers = [m for m in model.hyper_synthesis if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    for group in model.parameters_of_group:
        layers += [m for m in (group.context, group.spatial) if m is not None]
        layers += [m for m in group.net if isinstance(m, nn.Conv2d)]
    return layers


class RoundToStep(nn.Module):
    """Weights rounded to multiples of a fixed step in the forward pass, straight through."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (torch.round(weight / self.step) * self.step - weight).detach()


def round_weights(model: ShaeV9, steps_per_rms: int) -> None:
    """Each integer layer's weights rounded to the step its export at steps_per_rms will use."""
    for layer in integer_convolutions(model):
        weight = layer.weight.detach().double()
        if isinstance(layer, nn.ConvTranspose2d):
            weight = weight.flip(2, 3).transpose(0, 1)  # as int_layer reads it
        shift = weight_scale_bits(weight.numpy(), steps_per_rms)
        parametrize.register_parametrization(layer, "weight", RoundToStep(2.0 ** -shift))


def measure(model: ShaeV9, test: Latents, levels: list[int],
            steps_per_rms: int) -> tuple[dict[int, float], int]:
    """(real payload bits per pixel at each level, the bytes of hyperprior.npz), exported at
    steps_per_rms, the rounding of training (if any) made permanent first."""
    for layer in integer_convolutions(model):
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        model.frozen_tables(steps_per_rms).save(Path(folder) / "hyperprior.npz")
        size = (Path(folder) / "hyperprior.npz").stat().st_size
    return coded_bpp(model, test, levels, steps_per_rms), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--steps-per-rms", type=int, nargs="+", default=[4, 2])
    add_fit_arguments(parser, train_crops=192, steps=1500, lr=3e-5)
    args = parser.parse_args()
    model, _ = load_model(args.checkpoint)
    levels, train, test = experiment_latents(model, args)
    reference, reference_size = measure(copy.deepcopy(model), test, levels, 16)
    rows = [("checkpoint, k = 16 (as shipped)", 16, reference, reference_size)]
    plain = copy.deepcopy(model)
    start = time.time()
    fit_entropy_model(plain, train, args.steps, args.lr, args.batch, seed=0)
    rows.append(("fine-tuned, not rounded, k = 16", 16, *measure(plain, test, levels, 16)))
    print(f"plain fit: {time.time() - start:.0f} s", flush=True)
    for k in args.steps_per_rms:
        rows.append((f"rounded, k = {k}", k, *measure(copy.deepcopy(model), test, levels, k)))
        tuned = copy.deepcopy(model)
        round_weights(tuned, k)
        start = time.time()
        fit_entropy_model(tuned, train, args.steps, args.lr, args.batch, seed=0)
        rows.append((f"fine-tuned, k = {k}", k, *measure(tuned, test, levels, k)))
        print(f"k = {k}: {time.time() - start:.0f} s", flush=True)
    print(f"\nreal payloads of {args.test_crops} detail crops (256x256), change against the checkpoint at k = 16 "
          f"({reference_size:,} bytes of hyperprior.npz); fits: {args.steps} steps, lr {args.lr:g}, "
          f"{args.train_crops} training crops x {len(levels)} levels:")
    print("| entropy model | hyperprior.npz bytes | " + " | ".join(f"level {level + 1}" for level in levels) + " |")
    print("|---|---:|" + "---:|" * len(levels))
    for name, _, bpp, size in rows:
        changes = " | ".join(f"{100 * (bpp[level] / reference[level] - 1):+.2f} %" for level in levels)
        print(f"| {name} | {size:,} | {changes} |")
    print("\nbpp at k = 16: " + ", ".join(f"level {level + 1} {reference[level]:.4f}" for level in levels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
