"""Analysis (encoder) and synthesis (decoder) transforms.

Designed for a 2-core CPU: full resolution is touched only by space-to-depth / depth-to-space
(no convolutions there), 1/4 resolution by narrow 3x3 convolutions, and the capacity sits at
1/8 resolution where a pixel of latent costs 64x less than a pixel of image. GDN (Balle et al.,
ICLR 2017) after each stage transition, residual blocks elsewhere.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig


class GDN(nn.Module):
    """Generalized divisive normalization y = x / sqrt(beta + gamma @ x^2) (Balle et al. 2016).

    ``inverse=True`` gives IGDN (multiply instead of divide) for the synthesis side. Parameters
    are kept positive by taking absolute values, which exports cleanly to ONNX.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N,C,H,W
        c = x.shape[1]
        gamma = self.gamma.abs().view(c, c, 1, 1)
        norm = torch.sqrt(F.conv2d(x * x, gamma, self.beta.abs() + 1e-6))
        return x * norm if self.inverse else x / norm


class ResidualBlock(nn.Module):
    """x + conv3x3(lrelu(conv3x3(lrelu(x))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.1)), 0.1))


class AnalysisTransform(nn.Module):
    """Image N,3,H,W in [0,1] (H, W multiples of 8) -> latent N,C,H/8,W/8."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c4, c8 = cfg.stage4_channels, cfg.stage8_channels
        self.net = nn.Sequential(
            nn.PixelUnshuffle(4),  # N,48,H/4,W/4
            nn.Conv2d(48, c4, 3, padding=1),
            GDN(c4),
            ResidualBlock(c4),
            nn.Conv2d(c4, c8, 3, stride=2, padding=1),  # N,c8,H/8,W/8
            GDN(c8),
            ResidualBlock(c8),
            ResidualBlock(c8),
            nn.Conv2d(c8, cfg.latent_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - 0.5)


class RefineBranch(nn.Module):
    """1/4-resolution features N,c4,H/4,W/4 -> an additive image correction N,3,H,W.

    Goes through 1/2 resolution with a narrow residual block. Its last convolution starts at
    zero, so adding the branch to a trained synthesis leaves that model's output unchanged.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels * 4, 3, padding=1),
            nn.PixelShuffle(2),  # N,channels,H/2,W/2
            ResidualBlock(channels),
            nn.LeakyReLU(0.1),
            nn.Conv2d(channels, 12, 3, padding=1),
            nn.PixelShuffle(2),  # N,3,H,W
        )
        nn.init.zeros_(self.net[4].weight)
        nn.init.zeros_(self.net[4].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class SynthesisTransform(nn.Module):
    """Latent N,C,H/8,W/8 -> image N,3,H,W (not clamped)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c4, c8 = cfg.stage4_channels, cfg.stage8_channels
        self.net = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, c8, 3, padding=1),
            ResidualBlock(c8),
            ResidualBlock(c8),
            GDN(c8, inverse=True),
            nn.Conv2d(c8, c4 * 4, 3, padding=1),
            nn.PixelShuffle(2),  # N,c4,H/4,W/4
            *[ResidualBlock(c4) for _ in range(cfg.synthesis_blocks4)],
            GDN(c4, inverse=True),
            nn.Conv2d(c4, 48, 3, padding=1),
            nn.PixelShuffle(4),  # N,3,H,W
        )
        self.refine = RefineBranch(c4, cfg.refine_channels) if cfg.refine_channels else None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        features = self.net[:-2](y)  # N,c4,H/4,W/4
        x = self.net[-2:](features)  # N,3,H,W
        if self.refine is not None:
            x = x + self.refine(features)
        return x + 0.5
