"""Warm start: grow a trained autoencoder into a larger configuration without losing what it knows.

CPU time is the scarcest resource here, so a bigger model starts from the last trained one
instead of from scratch (the function-preserving growth of Chen et al., "Net2Net", ICLR 2016):

* more latent channels: the old channels keep their weights. A new channel starts with a random
  encoder row scaled to the old rows' mean norm (a random projection of the features, so it
  carries information), a zero decoder input (the output is unchanged), and gains that grow
  from 1/20 of the old channels' geometric mean at the lowest level to that mean at the highest, so
  that the low levels, where extra bits are not worth it, do not switch it off before the
  decoder learns to use it; its prior copies an old channel's. (With equal gains everywhere the
  new channels of a first attempt all fell to the zero center within 3000 steps. With this
  start and train.py's --new-channel-warmup they carried bits at the top levels during the
  warm-up, then still fell nearly silent once the rate term's pull was back.)
* more centers: the old (sorted) centers are kept and new ones added outside them at the outer
  spacing, with prior logits that start lower the further out they are;
* more quality levels (lambdas appended after the old ones, larger each): a new level's log-gains
  continue the old top two levels' step per channel, and its prior bias copies the top level's;
* more residual blocks at 1/8 or 1/4 resolution, in either transform: blocks whose last
  convolution is zero (identity); a refinement branch: its last convolution is zero too;
* per-level modulation (transforms.LevelModulation): starts as the identity; new levels copy
  the top level's.

Everything else is copied. With no new channels the grown model computes the old model's output.
The reverse, ``drop_channels``, removes latent channels that training left (nearly) silent.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .autoencoder import SoftToHardAutoencoder
from .config import ModelConfig
from .transforms import ResidualBlock

#: Logit penalty per step outward for a new outer center (a new center starts e^-4 less likely).
NEW_CENTER_LOGIT_STEP = 4.0
#: Gain of a new latent channel, relative to the old channels' mean, at the lowest level (it
#: rises geometrically to 1 at the highest).
NEW_CHANNEL_LOWEST_GAIN = 0.05


def _check_growable(old: ModelConfig, new: ModelConfig) -> None:
    same = ("stage4_channels", "stage8_channels", "prior_hidden")
    for name in same:
        if getattr(old, name) != getattr(new, name):
            raise ValueError(f"cannot grow: {name} differs ({getattr(old, name)} -> {getattr(new, name)})")
    top = tuple(new.lambdas[old.num_levels - 1:])  # the old top level and the added ones
    increasing = all(a < b for a, b in zip(top, top[1:]))
    if tuple(new.lambdas[:old.num_levels]) != tuple(old.lambdas) or not increasing:
        raise ValueError(f"cannot grow: lambdas must be the old ones {tuple(old.lambdas)} followed by "
                         f"larger ones, got {tuple(new.lambdas)}")
    if new.latent_channels < old.latent_channels:
        raise ValueError("cannot grow: fewer latent channels")
    if new.num_centers < old.num_centers or (new.num_centers - old.num_centers) % 2:
        raise ValueError("cannot grow: centers must grow by an even number (the same on each side)")
    for name in ("synthesis_blocks8", "synthesis_blocks4", "analysis_blocks8", "analysis_blocks4"):
        if getattr(new, name) < getattr(old, name):
            raise ValueError(f"cannot grow: fewer residual blocks ({name})")
    if old.level_modulation and not new.level_modulation:
        raise ValueError("cannot grow: the level modulation cannot be removed")
    if old.refine_channels and new.refine_channels != old.refine_channels:
        raise ValueError("cannot grow: refinement branch width differs")


def _grown_centers(old_sorted: torch.Tensor, extra_per_side: int) -> torch.Tensor:
    """Old sorted centers plus `extra_per_side` new ones at each end, at the outer spacing."""
    if extra_per_side == 0:
        return old_sorted.clone()
    steps = torch.arange(1, extra_per_side + 1, dtype=old_sorted.dtype)
    low = old_sorted[0] - (old_sorted[1] - old_sorted[0]) * steps.flip(0)
    high = old_sorted[-1] + (old_sorted[-1] - old_sorted[-2]) * steps
    return torch.cat([low, old_sorted, high])


@torch.no_grad()
def _grow_prior(old: SoftToHardAutoencoder, new: SoftToHardAutoencoder, order: torch.Tensor,
                src: torch.Tensor | None = None) -> None:
    """Copy the per-channel MLPs (grouped 1x1 convs): new channel j takes old channel src[j]
    (default j mod C)."""
    c_old, c_new = old.cfg.latent_channels, new.cfg.latent_channels
    hidden, l_old, l_new = old.cfg.prior_hidden, old.cfg.num_centers, new.cfg.num_centers
    src = torch.arange(c_new) % c_old if src is None else src
    po, pn = old.prior, new.prior
    pn.inp.weight.copy_(po.inp.weight.view(c_old, hidden, 4, 1, 1)[src].reshape_as(pn.inp.weight))
    pn.inp.bias.copy_(po.inp.bias.view(c_old, hidden)[src].reshape(-1))
    levels, new_levels = po.level_bias.weight.shape[0], pn.level_bias.weight.shape[0]
    per_level = po.level_bias.weight.view(levels, c_old, hidden)[:, src]  # levels,C_new,hidden
    per_level = torch.cat([per_level, per_level[-1:].expand(new_levels - levels, -1, -1)])  # new levels copy the top
    pn.level_bias.weight.copy_(per_level.reshape(new_levels, -1))
    pn.mid.weight.copy_(po.mid.weight.view(c_old, hidden, hidden, 1, 1)[src].reshape_as(pn.mid.weight))
    pn.mid.bias.copy_(po.mid.bias.view(c_old, hidden)[src].reshape(-1))
    # Output rows: old centers in sorted order, then the new outer ones copied from the ends.
    w_old = po.out.weight.view(c_old, l_old, hidden)[src][:, order]  # C_new,L_old,hidden
    b_old = po.out.bias.view(c_old, l_old)[src][:, order]  # C_new,L_old
    pad = (l_new - l_old) // 2
    idx = torch.clamp(torch.arange(l_new) - pad, 0, l_old - 1)
    distance = torch.clamp(pad - torch.arange(l_new), min=0) + torch.clamp(torch.arange(l_new) - pad - l_old + 1, min=0)
    pn.out.weight.copy_(w_old[:, idx].reshape_as(pn.out.weight))
    pn.out.bias.copy_((b_old[:, idx] - NEW_CENTER_LOGIT_STEP * distance).reshape(-1))


@torch.no_grad()
def _grow_modulation(old: nn.ModuleList | None, new: nn.ModuleList | None) -> None:
    """Copy per-level modulations; new levels copy the top level's. None: the model has none
    (a new one starts as the identity)."""
    if old is None or new is None:
        return
    for m_old, m_new in zip(old, new):
        for name in ("scale", "shift"):
            p_old, p_new = getattr(m_old, name), getattr(m_new, name)  # levels,channels
            top = p_old[-1:].expand(p_new.shape[0] - p_old.shape[0], -1)
            p_new.copy_(torch.cat([p_old, top]))


@torch.no_grad()
def _copy_module(src: nn.Module, dst: nn.Module) -> None:
    dst.load_state_dict(src.state_dict())


def _layer_mapping(num_old: int, inserts: dict[int, int]) -> list[int | None]:
    """For each layer of a grown Sequential, the old layer it copies, or None for an added
    residual block; inserts[i] added blocks go just before old layer i."""
    mapping: list[int | None] = []
    for index in range(num_old):
        mapping += [None] * inserts.get(index, 0) + [index]
    return mapping


@torch.no_grad()
def _copy_or_identity(old_layers: list[nn.Module], new_layer: nn.Module, old_index: int | None) -> None:
    """Copy old layer `old_index` into `new_layer`; None: `new_layer` is an added residual
    block, made the identity by zeroing its last convolution."""
    if old_index is None:
        assert isinstance(new_layer, ResidualBlock)
        nn.init.zeros_(new_layer.conv2.weight)
        nn.init.zeros_(new_layer.conv2.bias)
    else:
        _copy_module(old_layers[old_index], new_layer)


@torch.no_grad()
def grow(old: SoftToHardAutoencoder, cfg: ModelConfig, seed: int = 0) -> SoftToHardAutoencoder:
    """A model of configuration `cfg` that starts from `old` (see the module docstring)."""
    _check_growable(old.cfg, cfg)
    torch.manual_seed(seed)
    new = SoftToHardAutoencoder(cfg)
    c_old = old.cfg.latent_channels

    # Analysis: extra 1/4- and 1/8-resolution blocks start as the identity, after the old blocks
    # of their resolution; the last convolution gains output channels (new rows random, scaled
    # to the old rows' norm, so that a new channel carries information).
    old_layers, new_layers = list(old.analysis.net), list(new.analysis.net)
    b4, b8 = old.cfg.analysis_blocks4, old.cfg.analysis_blocks8
    last = len(old_layers) - 1
    mapping = _layer_mapping(len(old_layers), {3 + b4: cfg.analysis_blocks4 - b4, last: cfg.analysis_blocks8 - b8})
    for new_layer, old_index in zip(new_layers, mapping):
        if old_index == last:
            conv_new, conv_old = new_layer, old_layers[last]
            old_norm = conv_old.weight.flatten(1).norm(dim=1).mean()
            fresh = conv_new.weight[c_old:]
            fresh *= old_norm / fresh.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
            conv_new.weight[:c_old] = conv_old.weight
            conv_new.bias[:c_old] = conv_old.bias
            conv_new.bias[c_old:] = 0.0
        else:
            _copy_or_identity(old_layers, new_layer, old_index)

    # Synthesis: first conv gains inputs (zero for new channels); extra 1/8- and 1/4-resolution
    # blocks start as the identity, after the old blocks of their resolution.
    old_layers, new_layers = list(old.synthesis.net), list(new.synthesis.net)
    b8, b4 = old.cfg.synthesis_blocks8, old.cfg.synthesis_blocks4
    after8, after4 = 1 + b8, 4 + b8 + b4  # old indices of the IGDNs that follow each group of blocks
    mapping = _layer_mapping(len(old_layers), {after8: cfg.synthesis_blocks8 - b8, after4: cfg.synthesis_blocks4 - b4})
    for new_layer, old_index in zip(new_layers, mapping):
        if old_index == 0:
            first_new, first_old = new_layer, old_layers[0]
            first_new.weight[:, c_old:] = 0.0
            first_new.weight[:, :c_old] = first_old.weight
            first_new.bias.copy_(first_old.bias)
        else:
            _copy_or_identity(old_layers, new_layer, old_index)
    if old.synthesis.refine is not None:
        _copy_module(old.synthesis.refine, new.synthesis.refine)

    # Gains: new levels continue the top step; new channels start low at low levels (see the
    # module docstring).
    levels, l_old = cfg.num_levels, old.cfg.num_levels
    ramp = torch.linspace(torch.log(torch.tensor(NEW_CHANNEL_LOWEST_GAIN)).item(), 0.0, levels)[:, None]
    for name, sign in (("log_gain", 1.0), ("log_inv_gain", -1.0)):
        p_old, p_new = getattr(old, name), getattr(new, name)
        step = p_old[-1] - p_old[-2] if l_old > 1 else torch.zeros_like(p_old[-1])  # C_old
        ahead = torch.arange(1, levels - l_old + 1, dtype=p_old.dtype)[:, None]  # new levels, 1
        extended = torch.cat([p_old, p_old[-1] + ahead * step])  # levels,C_old
        p_new[:, :c_old] = extended
        p_new[:, c_old:] = extended.mean(dim=1, keepdim=True) + sign * ramp

    for transform in ("analysis", "synthesis"):
        _grow_modulation(getattr(old, transform).modulation, getattr(new, transform).modulation)

    order = old.quantizer.centers.argsort()
    pad = (cfg.num_centers - old.cfg.num_centers) // 2
    new.quantizer.centers.copy_(_grown_centers(old.quantizer.centers[order], pad))
    _grow_prior(old, new, order)
    return new


@torch.no_grad()
def channel_activity(model: SoftToHardAutoencoder, batches: list[torch.Tensor]) -> torch.Tensor:
    """Per latent channel, the largest fraction (over levels) of positions whose symbol is not
    the middle (zero) center, on `batches` (N,3,H,W in [0,1], sides multiples of 8). (C,)"""
    mid = (model.cfg.num_centers - 1) // 2
    busy = torch.zeros(model.cfg.num_levels, model.cfg.latent_channels)
    for x in batches:
        for level in range(model.cfg.num_levels):
            symbols = model.quantizer.symbols(model.latent(x, torch.full((x.shape[0],), level)))
            busy[level] += (symbols != mid).float().mean(dim=(0, 2, 3)) / len(batches)
    return busy.max(dim=0).values


@torch.no_grad()
def drop_channels(model: SoftToHardAutoencoder, drop: list[int]) -> SoftToHardAutoencoder:
    """The same model without the latent channels `drop` (nearly silent ones, by
    channel_activity). Where a dropped channel was not at the middle center the output changes;
    where it was, only by that center's few-thousandths offset from zero."""
    dropped = set(drop)
    keep = torch.tensor([c for c in range(model.cfg.latent_channels) if c not in dropped])
    if len(keep) == 0:
        raise ValueError("cannot drop every latent channel")
    new = SoftToHardAutoencoder(dataclasses.replace(model.cfg, latent_channels=len(keep)))
    shapes = {k: v.shape for k, v in new.state_dict().items()}
    # Tensors without a channel axis are copied as they are; the others are sliced below.
    new.load_state_dict({k: v for k, v in model.state_dict().items() if shapes[k] == v.shape}, strict=False)
    new.analysis.net[-1].weight.copy_(model.analysis.net[-1].weight[keep])
    new.analysis.net[-1].bias.copy_(model.analysis.net[-1].bias[keep])
    new.synthesis.net[0].weight.copy_(model.synthesis.net[0].weight[:, keep])
    new.log_gain.copy_(model.log_gain[:, keep])
    new.log_inv_gain.copy_(model.log_inv_gain[:, keep])
    _grow_prior(model, new, torch.arange(model.cfg.num_centers), src=keep)
    return new


@torch.no_grad()
def keep_levels(model: SoftToHardAutoencoder, levels: list[int]) -> SoftToHardAutoencoder:
    """The same model with only the quality levels `levels` (0-based, increasing), for shipping
    the levels that earn their place. Every kept level computes exactly what it did before."""
    if not levels or sorted(set(levels)) != list(levels) or levels[0] < 0 or levels[-1] >= model.cfg.num_levels:
        raise ValueError(f"levels to keep must be increasing, distinct and within 0..{model.cfg.num_levels - 1}")
    keep = torch.tensor(levels)
    new = SoftToHardAutoencoder(dataclasses.replace(model.cfg, lambdas=tuple(model.cfg.lambdas[i] for i in levels)))
    state = model.state_dict()
    # Per-level tensors have the levels on their first axis: gains, modulations, the prior's level bias.
    per_level = {"log_gain", "log_inv_gain", "prior.level_bias.weight"} | {
        key for key in state if key.endswith((".scale", ".shift")) and ".modulation." in key}
    new.load_state_dict({key: value[keep] if key in per_level else value for key, value in state.items()})
    return new
