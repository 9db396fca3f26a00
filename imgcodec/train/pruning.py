"""Pruning a shae-v9 checkpoint's 1/2- or 1/4-resolution feature maps (ShaeV9Config.half_channels,
quarter_channels).

At 768x512 61 % of a transform's multiply-adds sat in the layer between 1/2 and 1/4
resolution (docs/bench/speed-detail.md), and they scale with the width of the maps on either
side of it; a training step's time falls with it too. Instead of training a narrower model from
the start, the trained one is cut: each side keeps the channels that carry the most energy into
the next layer, and a fine-tune (``scripts/train.py --init``) repairs the rest.

A channel's score is E[a_c^2] * ||W_c||^2: the mean square of its activation after (I)GDN on
training crops, times the squared norm of the next layer's weights that read it. That is the
energy the channel adds to the next layer's input if the channels were uncorrelated (a
first-order criterion of channel pruning; Molchanov et al., ICLR 2017, compare such criteria).
GDN's mixing (gamma) of a removed channel into the others' normalisation goes with it.

Cut alone, the channels left cost several dB, so the cut layers are then fitted to what the
whole model computed, layer group by layer group (as He, Zhang, Sun, "Channel Pruning for
Accelerating Very Deep Neural Networks", ICCV 2017, refit the next layer by least squares): the
analysis' first two convolutions to the original's 1/4-resolution features, the synthesis' last
two to the original's first-stage image, by Adam on the crops with the rest of the model fixed.
A cut at 1/4 resolution refits the analysis' first three convolutions to the 1/8-resolution
features and the synthesis' last three to the image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal, Sequence

import numpy as np
import torch

from .architectures import architecture_of
from .shae_v9 import ShaeV9


Resolution = Literal["half", "quarter"]
#: Where the maps are cut -> (index of the analysis GDN whose output they are, index of the
#: synthesis IGDN whose output they are); the next layer on each side reads them.
MAPS: dict[str, tuple[int, int]] = {"half": (1, 5), "quarter": (3, 3)}
#: The ShaeV9Config field that holds each cut's width.
CONFIG_FIELD = {"half": "half_channels", "quarter": "quarter_channels"}


@dataclass(frozen=True)
class ChannelPruning:
    """What prune_channels measured on its crops at `levels` (0-based): PSNR of nearest
    rounding and the bits per pixel as the training loss counts them, of the model before, of
    the cut alone, and after the refit."""

    at: str
    kept_analysis: tuple[int, ...]
    kept_synthesis: tuple[int, ...]
    levels: tuple[int, ...]
    psnr_before: tuple[float, ...]
    bpp_before: tuple[float, ...]
    psnr_cut: tuple[float, ...]
    bpp_cut: tuple[float, ...]
    psnr_after: tuple[float, ...]
    bpp_after: tuple[float, ...]


@torch.no_grad()
def channel_scores(model: ShaeV9, x: torch.Tensor, level: int,
                   at: Resolution = "half") -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the channels of the maps `at` 1/2 or 1/4 resolution (analysis, synthesis),
    each C: E[a_c^2] ||W_c||^2 on x (N,3,H,W in [0,1]) at a level, the synthesis fed the
    nearest-rounded latent."""
    a, s = MAPS[at]
    analysis, synthesis = model.analysis, model.synthesis
    maps = analysis[:a + 1](x - 0.5)  # N,C,h,w after GDN
    reading = analysis[a + 1].weight  # n,C,k,k
    analysis_score = maps.pow(2).mean(dim=(0, 2, 3)) * reading.pow(2).sum(dim=(0, 2, 3))
    maps = synthesis[:s + 1](_decoded_latent(model, x, level))  # N,C,h,w after IGDN
    writing = synthesis[s + 1].weight  # C,n,k,k (ConvTranspose2d: in, out, k, k)
    synthesis_score = maps.pow(2).mean(dim=(0, 2, 3)) * writing.pow(2).sum(dim=(1, 2, 3))
    return analysis_score, synthesis_score


def _cut(value: torch.Tensor, target: torch.Size, kept: torch.Tensor) -> torch.Tensor:
    """value with every axis whose size differs from target's indexed by kept."""
    for axis, (old, new) in enumerate(zip(value.shape, target)):
        if old != new:
            value = value.index_select(axis, kept)
    return value


def _decoded_latent(model: ShaeV9, x: torch.Tensor, level: int) -> torch.Tensor:
    """The first stage's decoded latent times the inverse gains, N,T,h,w (nearest rounding),
    from the analysis alone (ShaeV9.latent would also run the residual stage)."""
    t = model.cfg.transform_channels
    centers = model.quantizer.centers.detach().sort().values
    y = model.analysis(x - 0.5).float() * model.log_gain[level, :t].exp()[None, :, None, None]
    return centers[model.quantizer.symbols(y)] * model.log_inv_gain[level, :t].exp()[None, :, None, None]


def fit_cut_layers(old: ShaeV9, new: ShaeV9, x: torch.Tensor, steps: int, lr: float = 1e-3,
                   batch: int = 4, seed: int = 0, at: Resolution = "half") -> tuple[float, float]:
    """Fit new's cut layers (the analysis up to the convolution after the cut maps, the
    synthesis from the one before them) to what old computes there on x (N,3,H,W in [0,1]),
    every level in turn for the synthesis; the rest of new is not touched. Returns the final mean
    square errors (analysis features, synthesis image)."""
    a, s = MAPS[at]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        features = torch.cat([old.analysis[:a + 2](part - 0.5) for part in x.split(8)])  # N,n,h,w
        levels = [k % old.cfg.num_levels for k in range(len(x))]
        decoded = [_decoded_latent(old, x[k:k + 1], level) for k, level in enumerate(levels)]
        inner = torch.cat([old.synthesis[:s - 1](y) for y in decoded])  # N,n,h,w
        images = torch.cat([old.synthesis(y) for y in decoded])  # N,3,H,W
    errors = []
    for layers, inputs, targets in ((new.analysis[:a + 2], x - 0.5, features), (new.synthesis[s - 1:], inner, images)):
        optimizer = torch.optim.Adam(layers.parameters(), lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        error = torch.tensor(0.0)
        for _ in range(steps):
            pick = torch.randint(0, len(inputs), (batch,), generator=generator)
            error = (layers(inputs[pick]) - targets[pick]).pow(2).mean()
            optimizer.zero_grad()
            error.backward()
            optimizer.step()
            schedule.step()
        errors.append(float(error.detach()))
    return errors[0], errors[1]


def prune_channels(state: dict[str, Any], keep: int, crops: Sequence[np.ndarray],
                   test_crops: Sequence[np.ndarray], fit_steps: int = 300,
                   levels: Sequence[int] | None = None,
                   at: Resolution = "half") -> tuple[dict[str, Any], ChannelPruning]:
    """A shae-v9 weights file (from --save-weights) with `keep` channels in the maps `at` 1/2 or
    1/4 resolution on each side, chosen by channel_scores on `crops` (H,W,3 uint8, sides
    multiples of 64) at the middle level and refitted on them by fit_cut_layers for `fit_steps`,
    and what it measured on `test_crops` at `levels` (0-based; default every level). Everything
    else is kept; start the next run with --init (a fresh optimizer and average)."""
    if at not in MAPS:
        raise ValueError(f"maps are cut at 'half' or 'quarter' resolution, not {at!r}")
    if architecture_of(state).name != "shae-v9":
        raise ValueError("only shae-v9 checkpoints are pruned here")
    cfg = architecture_of(state).config(state["model_config"])
    width = cfg.half_resolution_channels if at == "half" else cfg.quarter_resolution_channels
    if not 0 < keep < width:
        raise ValueError(f"keep must be between 1 and {width - 1} (the model has {width} channels at 1/{2 if at == 'half' else 4} resolution)")
    levels = list(range(cfg.num_levels)) if levels is None else list(levels)
    old = ShaeV9(cfg).eval()
    old.load_state_dict({k: v.float() for k, v in state["model"].items()})
    old.requires_grad_(False)
    x, test = (torch.stack([torch.from_numpy(np.array(c)).permute(2, 0, 1) for c in images]).float() / 255
               for images in (crops, test_crops))  # N,3,H,W
    scores = [torch.zeros(width), torch.zeros(width)]
    for part in x.split(8):
        for total, score in zip(scores, channel_scores(old, part, cfg.num_levels // 2, at)):
            total += score
    kept_analysis, kept_synthesis = (score.argsort(descending=True)[:keep].sort().values for score in scores)
    pruned_cfg = replace(cfg, **{CONFIG_FIELD[at]: keep})
    new = ShaeV9(pruned_cfg).eval()
    weights = new.state_dict()
    for name, value in old.state_dict().items():
        kept = kept_analysis if name.startswith("analysis.") else kept_synthesis
        weights[name] = _cut(value, weights[name].shape, kept)
    new.load_state_dict(weights)
    cut = [_measured(new, test, level) for level in levels]
    fit_cut_layers(old, new, x, fit_steps, at=at)
    before = [_measured(old, test, level) for level in levels]
    after = [_measured(new, test, level) for level in levels]
    dtypes = {k: v.dtype for k, v in state["model"].items()}
    pruned = {**state, "model_config": pruned_cfg.to_dict(),
              "model": {k: v.detach().to(dtypes[k]) for k, v in new.state_dict().items()},
              f"pruned_{CONFIG_FIELD[at]}": {"from": width, "to": keep, "crops": len(crops), "fit_steps": fit_steps}}
    pruned.pop("optimizer", None)
    pruned.pop("ema", None)
    report = ChannelPruning(at, tuple(kept_analysis.tolist()), tuple(kept_synthesis.tolist()), tuple(levels),
                                *(tuple(m[k] for m in rows) for rows in (before, cut, after) for k in (1, 0)))
    return pruned, report


@torch.no_grad()
def _measured(model: ShaeV9, x: torch.Tensor, level: int) -> tuple[float, float]:
    """(bits per pixel as the training loss counts them, PSNR of nearest rounding) on x at a level."""
    bits, error = 0.0, 0.0
    for part in x.split(8):
        bits += float(model(part, torch.full((len(part),), level))["bits"].sum())
        image = model.reconstruct(_full_decoded(model, part, level)).clamp(0, 1)
        error += float(((part - image) ** 2).sum())
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    return bits / pixels, 10 * math.log10(1 / (error / (3 * pixels)))


def _full_decoded(model: ShaeV9, x: torch.Tensor, level: int) -> torch.Tensor:
    """Both stages' decoded latent times the inverse gains, N,M,h,w (nearest rounding)."""
    centers = model.quantizer.centers.detach().sort().values
    return centers[model.quantizer.symbols(model.latent(x, level))] * model.log_inv_gain[level].exp()[None, :, None, None]
