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

from ..config import ModelConfig


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


class LevelModulation(nn.Module):
    """Per-quality-level channel-wise affine map x * (1 + scale[q]) + shift[q].

    The conditional convolutions of Choi et al. (ICCV 2019, "Variable rate deep image compression
    with a conditional autoencoder") in their cheapest form: one shared network, and per level only
    2 numbers per channel, so the transforms can treat a coarse and a fine latent differently (the
    per-level gains alone only rescale the latent). Starts as the identity.
    """

    def __init__(self, num_levels: int, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(num_levels, channels))
        self.shift = nn.Parameter(torch.zeros(num_levels, channels))

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:  # x: N,C,H,W; level: N
        return x * (1.0 + self.scale[level])[:, :, None, None] + self.shift[level][:, :, None, None]


def _modulations(cfg: ModelConfig, channels: tuple[int, ...]) -> nn.ModuleList:
    return nn.ModuleList(LevelModulation(cfg.num_levels, c) for c in channels)


def _run_stages(net: nn.Sequential, stage_ends: tuple[int, ...], modulations: nn.ModuleList,
                x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Run `net`, applying modulation k after layer stage_ends[k]."""
    start = 0
    for end, modulation in zip(stage_ends, modulations):
        x = modulation(net[start:end + 1](x), level)
        start = end + 1
    return net[start:](x)


class AnalysisTransform(nn.Module):
    """Image N,3,H,W in [0,1] (H, W multiples of 8) -> latent N,C,H/8,W/8."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c4, c8 = cfg.stage4_channels, cfg.stage8_channels
        self.net = nn.Sequential(
            nn.PixelUnshuffle(4),  # N,48,H/4,W/4
            nn.Conv2d(48, c4, 3, padding=1),
            GDN(c4),
            *[ResidualBlock(c4) for _ in range(cfg.analysis_blocks4)],
            nn.Conv2d(c4, c8, 3, stride=2, padding=1),  # N,c8,H/8,W/8
            GDN(c8),
            *[ResidualBlock(c8) for _ in range(cfg.analysis_blocks8)],
            nn.Conv2d(c8, cfg.latent_channels, 3, padding=1),
        )
        # Level modulations after the 1/4 GDN, the 1/8 GDN and the last residual block.
        b4, b8 = cfg.analysis_blocks4, cfg.analysis_blocks8
        self.stage_ends = (2, 4 + b4, 4 + b4 + b8)
        self.modulation = _modulations(cfg, (c4, c8, c8))

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:  # x: N,3,H,W; level: N
        return _run_stages(self.net, self.stage_ends, self.modulation, x - 0.5, level)


class RefineBranch(nn.Module):
    """1/4-resolution features N,c4,H/4,W/4 -> an additive image correction N,3,H,W.

    Goes through 1/2 resolution with a narrow residual block: detail that one linear 1/4 -> full
    resolution step cannot draw, at a quarter of full-resolution cost. Its last convolution
    starts at zero.
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
            *[ResidualBlock(c8) for _ in range(cfg.synthesis_blocks8)],
            GDN(c8, inverse=True),
            nn.Conv2d(c8, c4 * 4, 3, padding=1),
            nn.PixelShuffle(2),  # N,c4,H/4,W/4
            *[ResidualBlock(c4) for _ in range(cfg.synthesis_blocks4)],
            GDN(c4, inverse=True),
            nn.Conv2d(c4, 48, 3, padding=1),
            nn.PixelShuffle(4),  # N,3,H,W
        )
        self.refine = RefineBranch(c4, cfg.refine_channels)
        # Level modulations after the first conv, the 1/8 IGDN and the 1/4 residual blocks.
        b8, b4 = cfg.synthesis_blocks8, cfg.synthesis_blocks4
        self.stage_ends = (0, b8 + 1, b8 + 3 + b4)
        self.modulation = _modulations(cfg, (c8, c8, c4))

    def forward(self, y: torch.Tensor, level: torch.Tensor) -> torch.Tensor:  # y: N,C,h,w; level: N
        features = _run_stages(self.net[:-2], self.stage_ends, self.modulation, y, level)  # N,c4,H/4,W/4
        return self.net[-2:](features) + self.refine(features) + 0.5  # N,3,H,W
