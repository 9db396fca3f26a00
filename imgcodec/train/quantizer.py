"""Soft-to-hard scalar quantization with learned centers (Agustsson et al., NIPS 2017, Sec. 3).

Each latent value z is assigned to one of L centers c_l. Training uses the soft assignment
phi_l(z) = softmax_l(-sigma * (z - c_l)^2) for gradients and the hard nearest-center
assignment in the forward pass (the straight-through variant of Mentzer et al., CVPR 2018);
sigma is annealed upward so that the soft assignment approaches the hard one that coding uses.

The sharpness sigma is part of the training schedule: the trainer sets ``quantizer.sigma``
before each step (imgcodec.train.config.TrainConfig.sigma_at); the model's signature does not
carry it.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .lookup import take


class Quantized(NamedTuple):
    values: torch.Tensor  # N,C,H,W hard center values forward; the soft assignment's gradient backward
    soft: torch.Tensor  # N,C,H,W,L soft assignment phi(z)
    indices: torch.Tensor  # N,C,H,W int64 nearest-center symbols


class WindowedQuantized(NamedTuple):
    values: torch.Tensor  # N,C,H,W hard center values forward; the soft assignment's gradient backward
    soft: torch.Tensor  # N,C,H,W,K soft assignment over the window's centers
    window: torch.Tensor  # N,C,H,W,K int64 sorted positions of the window's centers
    symbols: torch.Tensor  # N,C,H,W int64 sorted position of the nearest center


class SoftToHardQuantizer(nn.Module):
    """Learned centers, initialised uniformly in [-center_range, center_range]."""

    def __init__(self, num_centers: int, center_range: float, sigma: float = 8.0) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.linspace(-center_range, center_range, num_centers))
        self.sigma = sigma  # soft-assignment sharpness, set by the trainer's schedule

    def forward(self, z: torch.Tensor) -> Quantized:  # z: N,C,H,W
        sigma = self.sigma
        dist = (z.unsqueeze(-1) - self.centers) ** 2  # N,C,H,W,L
        soft = torch.softmax(-sigma * dist, dim=-1)
        indices = dist.argmin(dim=-1)
        z_hard = take(self.centers, indices)  # gradient reaches each center from the values it takes
        z_soft = (soft * self.centers).sum(dim=-1)
        values = z_soft + (z_hard - z_soft).detach()
        return Quantized(values, soft, indices)

    def windowed(self, z: torch.Tensor, width: int) -> WindowedQuantized:  # z: N,C,H,W
        """forward() with the soft assignment restricted to the `width` sorted centers around
        each value's nearest one. softmax(-sigma d^2) gives a center 4 or more places away a
        weight below e^-17 of the nearest one's once sigma >= 3 and the centers are 0.7 or more
        apart, so with width 7 the values, soft assignment and gradients are forward()'s to
        float32 rounding, while every N,C,H,W,L tensor (with 83 centers, shae-v9's largest cost
        after the convolutions) shrinks to N,C,H,W,width. Symbols come in sorted order, as the
        coder uses them."""
        sorted_centers = self.centers.sort().values  # L, differentiable
        count = sorted_centers.numel()
        width = min(width, count)
        edges = (sorted_centers[1:] + sorted_centers[:-1]).detach() / 2  # L-1
        symbols = torch.searchsorted(edges, z.detach().contiguous())  # nearest center, N,C,H,W
        start = (symbols - width // 2).clamp(0, count - width)
        window = start.unsqueeze(-1) + torch.arange(width, device=z.device)  # N,C,H,W,K
        centers = take(sorted_centers, window)
        soft = torch.softmax(-self.sigma * (z.unsqueeze(-1) - centers) ** 2, dim=-1)
        z_soft = (soft * centers).sum(dim=-1)
        values = z_soft + (take(sorted_centers, symbols) - z_soft).detach()
        return WindowedQuantized(values, soft, window, symbols)

    def hard(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest-center indices into the centers parameter, N,C,H,W int64."""
        return (z.unsqueeze(-1) - self.centers).abs().argmin(dim=-1)

    def symbols(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest-center symbols as the coder sees them: indices of the SORTED centers (the
        order that shipped tables and files use), N,C,H,W int64."""
        rank = self.centers.detach().argsort().argsort()  # parameter index -> sorted position
        return rank[self.hard(z)]
