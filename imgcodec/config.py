"""Hyperparameters of the model and of training, stored inside every checkpoint.

Plain dataclasses without torch, so that the CLI and the model zoo can read them cheaply.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Rate-distortion trade-offs per quality level: loss = bpp + lambda * 255^2 * MSE. The values
#: are CompressAI's published MSE lambdas for its quality indices 1-8 (compressai/zoo), which
#: span roughly 0.1 to 1.5 bpp for hyperprior models on Kodak.
DEFAULT_LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the autoencoder, quantizer and context prior.

    The latent has ``latent_channels`` channels at 1/8 resolution. ``num_centers`` is L of the
    soft-to-hard quantizer (Agustsson et al. 2017, Sec. 3.1); the follow-up code of Mentzer et al.
    (CVPR 2018) uses L=6 and C=32 for low rates. We use more centers because per-level gains
    stretch the latent (Cui et al. 2021, "Asymmetric gained deep image compression") and the top
    levels need more than log2(6) bits per symbol.
    """

    latent_channels: int = 48
    # Odd L, so that one center starts at exactly 0: the cheap "nothing here" symbol that low
    # rates rely on (with 16 centers in [-7.5, 7.5] values near 0 split between +-0.5).
    num_centers: int = 15
    center_range: float = 7.0  # centers start uniformly in [-center_range, center_range]
    stage4_channels: int = 64  # channels at 1/4 resolution
    stage8_channels: int = 128  # channels at 1/8 resolution
    prior_hidden: int = 32  # hidden units per latent channel in the context prior MLP
    # Neighbours count in the context only up to this many centers either side of the middle
    # one (context_prior.context_symbol_map); None: every center is its own context symbol.
    context_clip: int | None = None
    synthesis_blocks8: int = 2  # residual blocks at 1/8 resolution in the synthesis
    synthesis_blocks4: int = 1  # residual blocks at 1/4 resolution in the synthesis
    analysis_blocks8: int = 2  # residual blocks at 1/8 resolution in the analysis
    analysis_blocks4: int = 1  # residual blocks at 1/4 resolution in the analysis
    # Channels of the synthesis' 1/2-resolution refinement branch (0: none). It adds detail
    # that one linear 1/4 -> full resolution step cannot draw, at a quarter of full-res cost.
    refine_channels: int = 0
    # Per-level channel-wise affine maps inside both transforms (transforms.LevelModulation).
    level_modulation: bool = False
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS

    @property
    def num_levels(self) -> int:
        return len(self.lambdas)

    @property
    def downscale(self) -> int:
        return 8

    def receptive_radius_latents(self) -> int:
        """How many latents either side of a position the transforms reach: the larger of the
        analysis' reach (an output latent's input pixels, in 8-pixel blocks) and the synthesis'
        (the latents that one output pixel depends on). Tiled coding (imgcodec.runtime) needs an
        overlap at least this wide to compute what the whole image computes."""
        # Analysis: the 1/4 stage's 3x3 convs (1 + 2 per block), the stride-2 conv (+1 at 1/4),
        # then at 1/8 the blocks' convs and the last conv.
        reach4 = 1 + 2 * self.analysis_blocks4 + 1
        analysis = 1 + 2 * self.analysis_blocks8 + -(-reach4 // 2)
        # Synthesis: first conv, the 1/8 blocks and the conv before depth-to-space, then at 1/4
        # the blocks and either the last conv (1) or the refinement branch (about 3 at 1/4).
        reach4 = 2 * self.synthesis_blocks4 + (3 if self.refine_channels else 1)
        synthesis = 2 + 2 * self.synthesis_blocks8 + -(-reach4 // 2)
        return max(analysis, synthesis)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "lambdas" in values:
            values["lambdas"] = tuple(values["lambdas"])
        return cls(**values)


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule; every run records it in its checkpoints and log."""

    steps: int = 10000
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-4
    lr_decay_at: float = 0.85  # fraction of steps after which lr drops 10x
    sigma_start: float = 1.0  # soft assignment sharpness, annealed geometrically ...
    sigma_end: float = 4.0  # ... to this value at the last step
    # Gradient of the decoder's input through the quantizer: "soft" (the paper's) or "identity"
    # (plain straight-through); see imgcodec.quantizer.
    ste: str = "soft"
    seed: int = 0
    threads: int = 2
    val_every: int = 1000
    ckpt_every: int = 250
    extra: dict[str, Any] = field(default_factory=dict)

    def sigma_at(self, step: int) -> float:
        t = min(1.0, step / max(1, self.steps))
        return self.sigma_start * (self.sigma_end / self.sigma_start) ** t

    def lr_at(self, step: int) -> float:
        return self.lr * (0.1 if step >= self.lr_decay_at * self.steps else 1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
