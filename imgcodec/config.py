"""Hyperparameters of the shipped architecture, stored inside every checkpoint and model.json.

A plain frozen dataclass without torch, so that the runtime and the model zoo read it cheaply.
The defaults are the shipped layout (shae-v7 and shae-v8 share it); unknown keys are an error,
so a typo in a configuration never passes silently.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: Rate-distortion trade-offs per quality level: loss = bpp + lambda * 255^2 * MSE. The first 8
#: are CompressAI's published MSE lambdas for its quality indices 1-8 (compressai/zoo); 0.27 and
#: 0.45 extend the range to about 1 bpp on the validation photos.
DEFAULT_LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800,
                                      0.27, 0.45)

#: The latent is at 1/DOWNSCALE of the image's resolution (one definition for the package).
DOWNSCALE = 8


def checked_fields(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    """`data` as keyword arguments of the dataclass `cls`; a key that is not one of its fields is
    a ValueError naming `what`, so a typo in a configuration never passes silently. Lists become
    tuples (JSON has no tuples)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the autoencoder, quantizer and context prior (docs/architecture.md).

    The latent has ``latent_channels`` channels at 1/8 resolution. ``num_centers`` is L of the
    soft-to-hard quantizer (Agustsson et al. 2017, Sec. 3.1), odd so that one center starts at 0.
    """

    latent_channels: int = 35
    num_centers: int = 69
    center_range: float = 7.0  # a new model's centers start uniformly in [-center_range, center_range]
    stage4_channels: int = 64  # channels at 1/4 resolution
    stage8_channels: int = 128  # channels at 1/8 resolution
    prior_hidden: int = 32  # hidden units per latent channel in the context prior MLP
    # Neighbours count in the context only up to this many centers either side of the middle one
    # (context_prior.context_symbol_map), so the tables grow with clip^2, not L^2.
    context_clip: int = 4
    synthesis_blocks8: int = 4  # residual blocks at 1/8 resolution in the synthesis
    synthesis_blocks4: int = 2  # residual blocks at 1/4 resolution in the synthesis
    analysis_blocks8: int = 4  # residual blocks at 1/8 resolution in the analysis
    analysis_blocks4: int = 2  # residual blocks at 1/4 resolution in the analysis
    refine_channels: int = 32  # channels of the synthesis' 1/2-resolution refinement branch
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS

    def __post_init__(self) -> None:
        sizes = {f.name: getattr(self, f.name) for f in fields(self)
                 if f.name not in ("lambdas", "center_range", "context_clip")}
        bad = [name for name, value in sizes.items() if not isinstance(value, int) or value < 1]
        if bad:
            raise ValueError(f"model config: {', '.join(bad)} must be positive integers")
        if self.num_centers % 2 == 0:
            raise ValueError("model config: num_centers must be odd (one center starts at 0)")
        if not 0 <= self.context_clip <= (self.num_centers - 1) // 2:
            raise ValueError(f"model config: context_clip must be in 0..{(self.num_centers - 1) // 2}")
        if not self.lambdas or any(lam <= 0 for lam in self.lambdas):
            raise ValueError("model config: lambdas must be positive")

    @property
    def num_levels(self) -> int:
        return len(self.lambdas)

    @property
    def downscale(self) -> int:
        return DOWNSCALE

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
        # the blocks and the refinement branch (about 3 at 1/4).
        reach4 = 2 * self.synthesis_blocks4 + 3
        synthesis = 2 + 2 * self.synthesis_blocks8 + -(-reach4 // 2)
        return max(analysis, synthesis)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """The config from a dict; a key that is not a field is an error (ValueError)."""
        return cls(**checked_fields(cls, data, "model config"))


#: Lambdas of shae-v9's levels: CompressAI's MSE lambdas 1-8, then two more so that the top
#: level reaches about 2 bpp on detailed photos.
SHAE_V9_LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800,
                                      0.2700, 0.4000)


@dataclass(frozen=True)
class ShaeV9Config:
    """Shape of shae-v9 (docs/architecture.md): a latent at 1/16 resolution with side information.

    Transforms: Balle et al.'s four 5x5 stride-2 convolutions with GDN (ICLR 2017/2018), N
    channels inside, M latent channels. Hyperprior (Balle et al., ICLR 2018) with its own latent
    at 1/64; channel-conditional context over uneven channel groups (Minnen & Singh, ICIP 2020;
    He et al., "ELIC", CVPR 2022): the decoder runs one parallel pass per group. Both latents are
    quantized to learned centers (Agustsson et al., NIPS 2017).

    With ``detail_channels`` D > 0 the last D latent channels are a second, residual stage (as in
    Toderici et al.'s residual coders, CVPR 2017): a linear 16x16 stride-16 projection of what the
    first stage's decoded image misses, coded as the last channel group and added back by the
    transposed projection. The transforms' own M - D channels cap their reconstruction (on the
    detail set a linear transform keeping 192 of 768 numbers per 16x16 block reaches 36.9 dB,
    320 reach 47.2 dB: ``scripts/klt_bound.py``), and the residual stage lifts that cap.
    """

    channels: int = 128  # N
    latent_channels: int = 192  # M, every coded channel (the residual stage's included)
    hyper_channels: int = 128  # channels of the side latent z
    num_centers: int = 63  # centers of the latent, starting uniformly in [-31, 31]
    hyper_num_centers: int = 31  # centers of the side latent, starting in [-15, 15]
    groups: tuple[int, ...] = (16, 16, 32, 64, 64)  # channel groups, coded one after another
    param_features: int = 256  # hyper-synthesis output channels shared by the groups' parameter nets
    context_features: int = 64  # features of each group's channel context
    scale_min: float = 0.11  # lower bound of the Gaussian scale (CompressAI's SCALES_MIN)
    lambdas: tuple[float, ...] = SHAE_V9_LAMBDAS
    detail_channels: int = 0  # D: the residual stage's channels, the last group (0: none)
    #: channels of the feature maps at 1/2 resolution (the first analysis layer's output, the last
    #: synthesis layer's input); 0: N. At 768x512 and N channels here, 61 % of a transform's
    #: multiply-adds are in the layer between 1/2 and 1/4, and they scale with this width
    #: (scripts/transform_macs.py).
    half_channels: int = 0
    #: channels of the feature maps at 1/4 resolution (the second analysis layer's output, the
    #: second synthesis layer's output); 0: N. With 64 at 1/2, the layers on either side of these
    #: maps hold most of what remains of a transform's multiply-adds.
    quarter_channels: int = 0
    #: features of each group's spatial context over its own anchors (a checkerboard, He et al.,
    #: CVPR 2021): every group is coded in two passes, anchors first; 0: no spatial context.
    spatial_features: int = 0

    def __post_init__(self) -> None:
        sizes = ("channels", "latent_channels", "hyper_channels", "num_centers", "hyper_num_centers",
                 "param_features", "context_features")
        bad = [name for name in sizes if not isinstance(getattr(self, name), int) or getattr(self, name) < 1]
        if bad:
            raise ValueError(f"shae-v9 config: {', '.join(bad)} must be positive integers")
        if sum(self.groups) != self.latent_channels or min(self.groups) < 1:
            raise ValueError(f"shae-v9 config: groups {self.groups} must be positive and sum to latent_channels")
        if self.num_centers % 2 == 0 or self.hyper_num_centers % 2 == 0:
            raise ValueError("shae-v9 config: center counts must be odd (one center starts at 0)")
        if not isinstance(self.detail_channels, int) or self.detail_channels < 0 \
                or (self.detail_channels and (len(self.groups) < 2 or self.groups[-1] != self.detail_channels)):
            raise ValueError("shae-v9 config: detail_channels must be 0 or the size of the last of two or more groups")
        if not self.lambdas or any(lam <= 0 for lam in self.lambdas):
            raise ValueError("shae-v9 config: lambdas must be positive")
        if not isinstance(self.half_channels, int) or self.half_channels < 0:
            raise ValueError("shae-v9 config: half_channels must be 0 (= channels) or a positive integer")
        if not isinstance(self.quarter_channels, int) or self.quarter_channels < 0:
            raise ValueError("shae-v9 config: quarter_channels must be 0 (= channels) or a positive integer")
        if not isinstance(self.spatial_features, int) or self.spatial_features < 0:
            raise ValueError("shae-v9 config: spatial_features must be 0 (none) or a positive integer")

    @property
    def num_levels(self) -> int:
        return len(self.lambdas)

    @property
    def downscale(self) -> int:
        return 16

    @property
    def half_resolution_channels(self) -> int:
        """Channels of the transforms' 1/2-resolution feature maps."""
        return self.half_channels or self.channels

    @property
    def quarter_resolution_channels(self) -> int:
        """Channels of the transforms' 1/4-resolution feature maps."""
        return self.quarter_channels or self.channels

    @property
    def transform_channels(self) -> int:
        """The latent channels of the analysis and synthesis transforms (M - D)."""
        return self.latent_channels - self.detail_channels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShaeV9Config":
        """The config from a dict; a key that is not a field is an error (ValueError)."""
        return cls(**checked_fields(cls, data, "shae-v9 config"))
