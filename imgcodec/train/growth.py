"""Growing a shae-v9 training checkpoint: more latent centers beyond the outermost ones, or a
residual stage (ShaeV9Config.detail_channels) that starts from what the transforms miss.

A latent value beyond the outermost center is clipped to it, and the soft assignment gives it no
gradient there, so training cannot learn to use larger values: it lowers the top levels' gains
instead. shae-v4 to shae-v7 hit the same ceiling (docs/experiments/center-clipping); the cure was
the same each time: new centers outside the old ones, at the outer spacing or wider, with every
trained number kept. Here the optimizer's moments are kept too, so a run resumes where it was.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch

from .architectures import architecture_of
from .shae_v9 import ShaeV9
from .training import make_optimizer

CENTERS_KEY = "quantizer.centers"


def outer_centers(centers: torch.Tensor, per_side: int, spacing: float) -> torch.Tensor:
    """centers (L) with `per_side` more below the lowest and above the highest, `spacing` apart: L + 2 per_side."""
    if per_side < 1 or spacing <= 0:
        raise ValueError("per_side must be at least 1 and spacing positive")
    offsets = spacing * torch.arange(1, per_side + 1, dtype=centers.dtype)
    return torch.cat([(centers.min() - offsets).flip(0), centers, centers.max() + offsets])


def grow_latent_centers(state: dict[str, Any], per_side: int, spacing: float) -> dict[str, Any]:
    """A shae-v9 checkpoint (a run's checkpoint.pt, or weights from --save-weights) with the latent
    quantizer grown by outer_centers; the model config, the tensors' dtypes, and (when present)
    Adam's moments (zero for the new centers) and the weight average follow. Everything else is
    kept as it was."""
    if architecture_of(state).name != "shae-v9":
        raise ValueError("only shae-v9 checkpoints grow centers")
    cfg = architecture_of(state).config(state["model_config"])
    old = ShaeV9(cfg)
    old.load_state_dict({k: v.float() for k, v in state["model"].items()})
    grown_cfg = replace(cfg, num_centers=cfg.num_centers + 2 * per_side)
    new = ShaeV9(grown_cfg)
    weights = old.state_dict()
    weights[CENTERS_KEY] = outer_centers(old.quantizer.centers.detach(), per_side, spacing)
    new.load_state_dict(weights)
    dtypes = {k: v.dtype for k, v in state["model"].items()}
    result = {**state, "model_config": grown_cfg.to_dict(),
              "model": {k: v.to(dtypes[k]) for k, v in new.state_dict().items()},
              "grown_centers": {"from": cfg.num_centers, "to": grown_cfg.num_centers, "spacing": spacing}}
    if "optimizer" in state:
        result["optimizer"] = _grown_optimizer(old, new, state["optimizer"], per_side)
    if "ema" in state:  # the run's weight average (imgcodec.train.averaging) grows the same way
        result["ema"] = {**state["ema"], CENTERS_KEY: outer_centers(state["ema"][CENTERS_KEY].float(), per_side, spacing)}
    return result


def _grown_optimizer(old: ShaeV9, new: ShaeV9, saved: dict[str, Any], per_side: int) -> dict[str, Any]:
    """Adam's state for `new`, parameter by parameter name; the centers' moments padded with zeros."""
    old_optimizer = make_optimizer(old, lr=1.0)
    old_optimizer.load_state_dict(saved)
    new_optimizer = make_optimizer(new, lr=1.0)
    old_params = dict(old.named_parameters())
    for name, param in new.named_parameters():
        moments = old_optimizer.state.get(old_params[name])
        if not moments:
            continue
        grown = {}
        for key, value in moments.items():
            if name == CENTERS_KEY and key != "step":
                zeros = value.new_zeros(per_side)
                value = torch.cat([zeros, value, zeros])
            grown[key] = value.clone()
        new_optimizer.state[param] = grown
    for new_group, old_group in zip(new_optimizer.param_groups, old_optimizer.param_groups):
        new_group.update({k: v for k, v in old_group.items() if k != "params"})
    return new_optimizer.state_dict()


@dataclass(frozen=True)
class DetailGrowth:
    """What grow_detail_stage measured on its crops, per level (1-based order): the first
    stage's PSNR, and the PSNR with the new stage's nearest-center symbols added, the share of
    those symbols that are not the zero one, and the bits per pixel that the training loss counts
    before and after (the float tables, nearest rounding)."""

    psnr_before: tuple[float, ...]
    psnr_after: tuple[float, ...]
    nonzero_share: tuple[float, ...]
    bpp_before: tuple[float, ...]
    bpp_after: tuple[float, ...]


def _blocks(images: torch.Tensor, size: int) -> torch.Tensor:
    """N,3,H,W -> every size x size block as a row in the layout of a Conv2d weight (3,size,size)."""
    n, c, h, w = images.shape
    rows = images.reshape(n, c, h // size, size, w // size, size).permute(0, 2, 4, 1, 3, 5)
    return rows.reshape(-1, c * size * size)


def detail_step(lam: float, block: int = 16) -> float:
    """The rounding step of a residual coefficient (pixel units in [0, 1]) that minimizes the
    training loss lam * 255^2 * MSE + bpp at high rate: an entropy-coded uniform quantizer's
    error is step^2 / 12 per coefficient and its rate falls by one bit each time the step
    doubles, so with 3 block^2 values and block^2 pixels per block, step^2 = 18 / (ln 2 lam 255^2)
    for block 16 (0.032 at lam 0.4, 0.47 at 0.0018)."""
    values, pixels = 3 * block * block, block * block
    return math.sqrt(12 * values / (2 * pixels * math.log(2) * lam * 255 ** 2))


@torch.no_grad()
def grow_detail_stage(state: dict[str, Any], count: int, crops: Sequence[np.ndarray],
                      scale_init: float = 0.2) -> tuple[dict[str, Any], DetailGrowth]:
    """A shae-v9 weights file (from --save-weights) grown by a residual stage of `count` channels,
    and what it measured. Every trained number is kept and the first stage is unchanged; the new
    stage starts where it helps at once, so that the rate term does not silence it before the
    decoder learns to use it (docs/experiments/hold-new-gains: randomly started channels went
    silent):

    - its projections are the principal components of the top level's residual (x minus the first
      stage's decoded image) on `crops` (H,W,3 uint8, sides multiples of 64), one per 16x16 block
      each way (the analysis and the transposed synthesis share the orthonormal basis);
    - its gain at each level sets the step that the level's lambda asks for (detail_step);
    - the side transform reads it through zero weights (the side latent is unchanged), and its
      group's parameter net predicts mean 0 and a scale of `scale_init` times the centers' spacing
      at zero until it learns better (0.2, on evenly spaced centers: a zero symbol costs about
      0.02 bit, a neighbouring one about 7).
    Start the next run with --init (a fresh optimizer and average)."""
    if architecture_of(state).name != "shae-v9":
        raise ValueError("only shae-v9 checkpoints grow a residual stage")
    cfg = architecture_of(state).config(state["model_config"])
    if cfg.detail_channels:
        raise ValueError("this checkpoint already has a residual stage")
    block = cfg.downscale
    if not 0 < count <= 3 * block * block:
        raise ValueError(f"the residual stage takes 1 to {3 * block * block} channels")
    old = ShaeV9(cfg)
    old.load_state_dict({k: v.float() for k, v in state["model"].items()})
    grown_cfg = replace(cfg, latent_channels=cfg.latent_channels + count, groups=(*cfg.groups, count),
                        detail_channels=count)
    new = ShaeV9(grown_cfg)
    weights = new.state_dict()
    for name, value in old.state_dict().items():
        if weights[name].shape == value.shape:
            weights[name] = value
    t = cfg.latent_channels
    for name in ("hyper_analysis.0.weight", "log_gain", "log_inv_gain"):
        weights[name][:, :t] = old.state_dict()[name]
    weights["hyper_analysis.0.weight"][:, t:] = 0.0
    x = torch.stack([torch.from_numpy(np.array(c)).permute(2, 0, 1) for c in crops]).float() / 255  # N,3,H,W
    centers = old.quantizer.centers.detach().sort().values

    def batched(model: ShaeV9, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """model's nearest-rounding image of every crop at a level and its symbols (N,3,H,W and
        N,M,h,w), 8 crops at a time (memory)."""
        images, symbols = [], []
        for part in x.split(8):
            symbols.append(model.quantizer.symbols(model.latent(part, level)))
            images.append(model.reconstruct(centers[symbols[-1]] * model.log_inv_gain[level].exp()[None, :, None, None]))
        return torch.cat(images).clamp(0, 1), torch.cat(symbols)

    first = [batched(old, level)[0] for level in range(cfg.num_levels)]  # per level N,3,H,W
    residual = _blocks(x - first[-1], block).double()  # blocks,768 at the top level
    _, vectors = torch.linalg.eigh(residual.T @ residual / len(residual))
    basis = vectors[:, -count:].flip(1).T.float()  # count,768, largest first
    weights["detail_analysis.weight"] = basis.reshape(count, 3, block, block)
    weights["detail_synthesis.weight"] = basis.reshape(count, 3, block, block).clone()
    zero_at = int(centers.abs().argmin())
    spacing = float(centers[min(zero_at + 1, len(centers) - 1)] - centers[max(zero_at - 1, 0)]) / 2
    for level, lam in enumerate(cfg.lambdas):
        gain = spacing / detail_step(lam, block)
        weights["log_gain"][level, t:] = math.log(gain)
        weights["log_inv_gain"][level, t:] = -math.log(gain)
    head = f"parameters_of_group.{len(cfg.groups)}.net.4"
    weights[f"{head}.weight"].zero_()
    weights[f"{head}.bias"][:count] = 0.0
    weights[f"{head}.bias"][count:] = math.log(max(scale_init * spacing, cfg.scale_min))
    new.load_state_dict(weights)

    def bpp(model: ShaeV9, level: int) -> float:
        bits = sum(float(model(part, torch.full((len(part),), level))["bits"].sum()) for part in x.split(8))
        return bits / (x.shape[0] * x.shape[2] * x.shape[3])

    before, after, nonzero, rate_before, rate_after = [], [], [], [], []
    for level in range(cfg.num_levels):
        rate_before.append(bpp(old, level))
        rate_after.append(bpp(new, level))
        image, symbols = batched(new, level)
        before.append(10 * math.log10(1 / float(((x - first[level]) ** 2).mean())))
        after.append(10 * math.log10(1 / float(((x - image) ** 2).mean())))
        nonzero.append(float((symbols[:, t:] != zero_at).float().mean()))
    dtypes = {k: v.dtype for k, v in state["model"].items()}
    dtype = next(iter(dtypes.values()))
    grown = {**state, "model_config": grown_cfg.to_dict(),
             "model": {k: v.to(dtypes.get(k, dtype)) for k, v in new.state_dict().items()},
             "grown_detail": {"channels": count, "crops": len(crops)}}
    grown.pop("optimizer", None)
    grown.pop("ema", None)
    return grown, DetailGrowth(tuple(before), tuple(after), tuple(nonzero), tuple(rate_before), tuple(rate_after))


def grow_spatial_context(state: dict[str, Any], features: int, seed: int = 0) -> dict[str, Any]:
    """A shae-v9 weights file with a spatial context of `features` channels in every group
    (ShaeV9Config.spatial_features: a checkerboard over the group's own anchors, He et al., CVPR
    2021) that starts silent: the new convolutions get PyTorch's default initialisation (from
    `seed`) and the heads read them through zero weights, so every rate and image is what it was
    until training moves them. The optimizer and the average are dropped: continue with --init."""
    if architecture_of(state).name != "shae-v9":
        raise ValueError("only shae-v9 checkpoints grow a spatial context")
    cfg = architecture_of(state).config(state["model_config"])
    if cfg.spatial_features:
        raise ValueError(f"the model already has a spatial context ({cfg.spatial_features} features)")
    if features < 1:
        raise ValueError("features must be at least 1")
    grown_cfg = replace(cfg, spatial_features=features)
    torch.manual_seed(seed)
    new = ShaeV9(grown_cfg)
    weights = new.state_dict()
    for name, value in state["model"].items():
        value = value.float()
        if name.startswith("parameters_of_group.") and name.endswith(".net.0.weight"):
            value = torch.cat([value, value.new_zeros(value.shape[0], features, 1, 1)], dim=1)  # silent columns
        weights[name] = value
    new.load_state_dict(weights)
    dtype = state["model"]["analysis.0.weight"].dtype
    grown = {k: v for k, v in state.items() if k not in ("optimizer", "ema")}
    grown.update({"model_config": grown_cfg.to_dict(),
                  "model": {k: v.to(dtype) if v.is_floating_point() else v for k, v in new.state_dict().items()},
                  "grown_spatial_context": {"features": features, "seed": seed}})
    return grown
