"""The shipped architecture as a trainable PyTorch model (shae-v7 and shae-v8 share it).

The contract follows CompressAI's models: ``forward(x, level)`` for training (reconstruction and
the rate in bits), ``compress`` / ``decompress`` for coding, which run the same numpy rounding,
tables and range coder as the runtime (imgcodec.codec), so a checkpoint is judged by real files.
The training schedule (sigma of the soft assignment, learning rate) lives in the trainer.

Variable rate with one set of weights: each quality level has a gain vector that scales the
latent before quantization and an inverse gain applied before synthesis (Cui et al., CVPR 2021).
Training samples a level per image and weighs the distortion with that level's lambda.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..coder import decode_symbols, encode_symbols
from ..config import DOWNSCALE, ModelConfig
from ..context_prior import PriorTables
from ..rounding import rd_symbols
from .prior_model import ContextPriorNet
from .quantizer import SoftToHardQuantizer
from .transforms import AnalysisTransform, SynthesisTransform


@dataclass(frozen=True)
class FrozenParts:
    """What coding needs besides the transforms: the integer tables and the sorted centers, gains
    and thresholds as numpy arrays, exactly as an exported model's prior.npz holds them."""

    prior: PriorTables
    centers: np.ndarray  # L float32, sorted
    thresholds: np.ndarray  # L-1 float32, midpoints between neighbouring centers
    gains: np.ndarray  # levels,C float32
    inverse_gains: np.ndarray  # levels,C float32


class ShaeV8(nn.Module):
    """Transforms + per-level gains + soft-to-hard quantizer + context prior."""

    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
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

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: N,3,H,W in [0,1] (H, W multiples of 8), level: N (0-based) ->
        {"x_hat": N,3,H,W (not clamped), "bits": N (cross-entropy of the symbols),
        "indices": N,C,h,w (nearest centers, unsorted parameter order)}."""
        z = self.latent(x, level)  # N,C,h,w
        q = self.quantizer(z)
        bits = self.prior.bits(q.values, q.soft, q.indices, level, self.sorted_centers())
        return {"x_hat": self.reconstruct(q.values, level), "bits": bits, "indices": q.indices}

    def latent(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Image N,3,H,W -> the level's scaled latent N,C,H/8,W/8, ready to quantize."""
        gain, _ = self.gains(level)
        return self.analysis(x, level) * gain

    def reconstruct(self, values: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """(Quantized) scaled latent N,C,h,w -> image N,3,8h,8w (not clamped)."""
        _, inv_gain = self.gains(level)
        return self.synthesis(values * inv_gain, level)

    def level_parameters(self) -> list[nn.Parameter]:
        """The per-level parameters: gains and the transforms' level modulations."""
        return [self.log_gain, self.log_inv_gain, *self.analysis.modulation.parameters(),
                *self.synthesis.modulation.parameters()]

    def sorted_centers(self) -> torch.Tensor:
        """The centers in ascending order (symbols index this order), with their gradient."""
        return self.quantizer.centers.sort().values

    @torch.no_grad()
    def freeze(self) -> FrozenParts:
        """Tabulate the prior and take the coding parameters out as numpy (what export writes)."""
        centers = self.sorted_centers().float().numpy()
        return FrozenParts(self.prior.tabulate(self.sorted_centers()), centers,
                           ((centers[1:] + centers[:-1]) / 2).astype(np.float32),
                           self.log_gain.exp().float().numpy(), self.log_inv_gain.exp().float().numpy())

    @torch.no_grad()
    def compress(self, rgb: np.ndarray, level: int, frozen: FrozenParts, tau: float = 0.0) -> tuple[bytes, np.ndarray]:
        """H,W,3 uint8 -> (latent payload, symbols C,h,w): the runtime's padding, gains and
        rounding (imgcodec.rounding, tau 0 = nearest) on this model's analysis."""
        height, width = rgb.shape[:2]
        h, w = -(-height // DOWNSCALE), -(-width // DOWNSCALE)
        padded = np.pad(rgb, ((0, h * DOWNSCALE - height), (0, w * DOWNSCALE - width), (0, 0)), mode="edge")
        x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32) / 255.0)[None]
        latent = self.analysis(x, torch.tensor([level]))[0].float().numpy()  # C,h,w
        latent *= frozen.gains[level][:, None, None]
        symbols = rd_symbols(latent, frozen.centers, frozen.thresholds, frozen.prior, level,
                             frozen.inverse_gains[level].astype(np.float64) ** 2, tau)
        return encode_symbols(symbols, frozen.prior, level), symbols

    @torch.no_grad()
    def decompress(self, payload: bytes, level: int, width: int, height: int, frozen: FrozenParts) -> np.ndarray:
        """Latent payload -> H,W,3 uint8, as the runtime decodes it."""
        shape = (self.cfg.latent_channels, -(-height // DOWNSCALE), -(-width // DOWNSCALE))
        symbols = decode_symbols(payload, shape, frozen.prior, level)
        latent = frozen.centers[symbols] * frozen.inverse_gains[level][:, None, None]  # C,h,w
        x_hat = self.synthesis(torch.from_numpy(latent)[None], torch.tensor([level]))[0].numpy()
        x_hat = x_hat[:, :height, :width]
        return np.clip(np.rint(x_hat * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
