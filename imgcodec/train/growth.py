"""Growing a shae-v9 training checkpoint: more latent centers beyond the outermost ones.

A latent value beyond the outermost center is clipped to it, and the soft assignment gives it no
gradient there, so training cannot learn to use larger values: it lowers the top levels' gains
instead. shae-v4 to shae-v7 hit the same ceiling (docs/experiments/center-clipping); the cure was
the same each time: new centers outside the old ones, at the outer spacing or wider, with every
trained number kept. Here the optimizer's moments are kept too, so a run resumes where it was.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

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
