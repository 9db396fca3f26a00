"""Fitting a shae-v9 model's entropy model alone, its transforms fixed, and measuring it.

Experiments that change only how the rate is modelled (a spatial context, coarser integer
weights: docs/experiments/spatial-context, docs/experiments/entropy-qat) compute the latents of
some crops once, train the hyperprior and the group networks on their bits, and measure real
payloads through the exported integer model. The images and the transforms stay fixed, so a
difference in bits is a difference at equal distortion.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from .data import load_images, random_crops
from .shae_v9 import SOFT_WINDOW, ShaeV9

Latents = list[tuple[int, torch.Tensor]]


def add_fit_arguments(parser: argparse.ArgumentParser, train_crops: int, steps: int, lr: float) -> None:
    """The options such an experiment shares (its defaults for crops, steps and learning rate)."""
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 7, 10], help="1-based")
    parser.add_argument("--train-crops", type=int, default=train_crops)
    parser.add_argument("--test-crops", type=int, default=24)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--threads", type=int, default=2)


def experiment_latents(model: ShaeV9, args: argparse.Namespace) -> tuple[list[int], Latents, Latents]:
    """(0-based levels, latents of random 256x256 crops of data/train to fit on, of data/detail
    to measure on) for add_fit_arguments' options; sets torch's threads and says how long it took."""
    torch.set_num_threads(args.threads)
    levels = [level - 1 for level in args.levels]
    start = time.time()
    train = crop_latents(model, random_crops(load_images(args.data / "train"), args.train_crops, 256), levels)
    test = crop_latents(model, random_crops(load_images(args.data / "detail"), args.test_crops, 256, seed=1), levels)
    print(f"latents of {args.train_crops} training and {args.test_crops} detail crops at levels {args.levels}: "
          f"{time.time() - start:.0f} s", flush=True)
    return levels, train, test


def crop_latents(model: ShaeV9, crops: list[np.ndarray], levels: list[int]) -> Latents:
    """(level, gained latent 1,M,h,w) of every crop (h,w,3 uint8) at every level (0-based)."""
    out = []
    with torch.no_grad():
        for crop in crops:
            x = torch.from_numpy(np.array(crop)).permute(2, 0, 1)[None].float() / 255
            analysed = model.analysis(x - 0.5).float()
            out += [(level, model.latent(x, level, analysed)) for level in levels]
    return out


def entropy_parameters(model: ShaeV9) -> list[torch.nn.Parameter]:
    """Everything that sets the rate and not the image: the hyperprior and the group networks."""
    parts = [model.hyper_analysis, model.hyper_synthesis, model.parameters_of_group]
    return [p for part in parts for p in part.parameters()] + [model.hyper_logits]


def fit_entropy_model(model: ShaeV9, train: Latents, steps: int, lr: float, batch: int,
                      seed: int) -> None:
    """Adam on the mean bits per latent position of random batches of the training latents,
    the entropy model alone (entropy_parameters); leaves the model in eval mode."""
    model.train()
    optimizer = torch.optim.Adam(entropy_parameters(model), lr)
    generator = torch.Generator().manual_seed(seed)
    ys = torch.cat([y for _, y in train])  # N,M,h,w
    for _ in range(steps):
        y = ys[torch.randint(0, len(ys), (batch,), generator=generator)]
        with torch.no_grad():
            qy = model.quantizer.windowed(y, SOFT_WINDOW)
        bits, _ = model.rate(y, qy)
        optimizer.zero_grad()
        (bits.mean() / y[0, 0].numel()).backward()
        optimizer.step()
    model.eval()


@torch.no_grad()
def coded_bpp(model: ShaeV9, test: Latents, levels: list[int],
              steps_per_rms: int | None = None) -> dict[int, float]:
    """Real payload bits per pixel at each level (mean over the test latents, nearest rounding),
    through the integer entropy model exported with these weight steps (frozen_tables)."""
    tables = model.frozen_tables(steps_per_rms)
    bits: dict[int, list[float]] = {level: [] for level in levels}
    for level, y in test:
        z = model.hyper_analysis(y).float()
        y_symbols = model.quantizer.symbols(y)[0].numpy().astype(np.int32)
        z_symbols = model.hyper_quantizer.symbols(z)[0].numpy().astype(np.int32)
        pixels = y.shape[2] * y.shape[3] * model.cfg.downscale ** 2
        bits[level].append(8 * len(tables.encode(y_symbols, z_symbols)) / pixels)
    return {level: float(np.mean(values)) for level, values in bits.items()}
