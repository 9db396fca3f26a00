"""Fitting a shae-v9 model's entropy model alone, its transforms fixed, and measuring it.

Experiments that change only how the rate is modelled (a spatial context, coarser integer
weights: docs/experiments/spatial-context, docs/experiments/entropy-qat) compute the latents of
some crops once, train the hyperprior and the group networks on their bits, and measure real
payloads through the exported integer model. The images and the transforms stay fixed, so a
difference in bits is a difference at equal distortion.
"""
from __future__ import annotations

import numpy as np
import torch

from .shae_v9 import SOFT_WINDOW, ShaeV9


def crop_latents(model: ShaeV9, crops: list[np.ndarray], levels: list[int]) -> list[tuple[int, torch.Tensor]]:
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


def fit_entropy_model(model: ShaeV9, train: list[tuple[int, torch.Tensor]], steps: int, lr: float, batch: int,
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
def coded_bpp(model: ShaeV9, test: list[tuple[int, torch.Tensor]], levels: list[int],
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
