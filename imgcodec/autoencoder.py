"""The trainable soft-to-hard autoencoder: transforms + gains + quantizer + context prior.

Variable rate with one set of weights: each quality level q has a gain vector g_q that scales
the latent before quantization and an inverse gain applied before synthesis (Cui et al.,
CVPR 2021). A small gain maps most values to the center nearest zero (low rate); a large one
spreads them over more centers (high rate). Training samples a level per image and weighs the
distortion with that level's lambda.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .config import ModelConfig
from .prior_model import ContextPriorNet
from .quantizer import SoftToHardQuantizer, SteMode
from .transforms import AnalysisTransform, SynthesisTransform


class ForwardResult(NamedTuple):
    x_hat: torch.Tensor  # N,3,H,W
    bits: torch.Tensor  # N, cross-entropy of the symbols in bits
    indices: torch.Tensor  # N,C,H/8,W/8


class SoftToHardAutoencoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.analysis = AnalysisTransform(cfg)
        self.synthesis = SynthesisTransform(cfg)
        self.quantizer = SoftToHardQuantizer(cfg.num_centers, cfg.center_range)
        self.prior = ContextPriorNet(cfg.latent_channels, cfg.num_centers, cfg.num_levels, cfg.prior_hidden,
                                     cfg.context_clip)
        init = torch.linspace(math.log(0.25), math.log(4.0), cfg.num_levels)
        self.log_gain = nn.Parameter(init[:, None].repeat(1, cfg.latent_channels))  # levels,C
        self.log_inv_gain = nn.Parameter(-init[:, None].repeat(1, cfg.latent_channels))

    def gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain for each sample: N,C,1,1 each."""
        return (self.log_gain[level].exp()[:, :, None, None],
                self.log_inv_gain[level].exp()[:, :, None, None])

    def forward(self, x: torch.Tensor, level: torch.Tensor, sigma: float,
                latent_grad_scale: torch.Tensor | None = None, ste: SteMode = "soft") -> ForwardResult:
        """`latent_grad_scale` (C,): see ContextPriorNet.bits; `ste`: see quantizer."""
        z = self.latent(x, level)  # N,C,h,w
        q = self.quantizer(z, sigma, ste)
        bits = self.prior.bits(q.values, q.soft, q.indices, level, self.quantizer.centers.sort().values,
                               latent_grad_scale)
        return ForwardResult(self.reconstruct(q.values, level), bits, q.indices)

    def latent(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Image N,3,H,W -> the level's scaled latent N,C,H/8,W/8, ready to quantize."""
        gain, _ = self.gains(level)
        return self.analysis(x, level) * gain

    def reconstruct(self, values: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """(Quantized) scaled latent N,C,h,w -> image N,3,8h,8w (not clamped)."""
        _, inv_gain = self.gains(level)
        return self.synthesis(values * inv_gain, level)

    def level_parameters(self) -> list[nn.Parameter]:
        """The per-level parameters: gains and, if any, the transforms' level modulations."""
        params = [self.log_gain, self.log_inv_gain]
        for transform in (self.analysis, self.synthesis):
            if transform.modulation is not None:
                params += list(transform.modulation.parameters())
        return params

    @torch.no_grad()
    def sorted_centers(self) -> torch.Tensor:
        return self.quantizer.centers.detach().sort().values
