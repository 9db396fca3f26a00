"""The training schedule, recorded in every checkpoint and training log."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config import checked_fields
from typing import Any


DISTORTIONS = ("mse", "ms-ssim")


@dataclass(frozen=True)
class TrainConfig:
    """Steps, batch, learning rate and the soft-assignment sharpness schedule."""

    steps: int = 10000
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-4
    lr_decay_at: float = 0.85  # fraction of steps after which lr drops 10x
    sigma_start: float = 8.0  # soft assignment sharpness, annealed geometrically ...
    sigma_end: float = 8.0  # ... to this value at the last step
    seed: int = 0
    threads: int = 2
    val_every: int = 1000
    ckpt_every: int = 250
    #: "mse": loss lambda * 255^2 * MSE + bpp; "ms-ssim": lambda * (1 - MS-SSIM) + bpp, as
    #: CompressAI's MS-SSIM models (Begaint et al. 2020), which it fine-tunes from MSE ones.
    distortion: str = "mse"
    #: Exponential average of the weights (imgcodec.train.averaging) that validation measures and
    #: --save-weights writes; 0 = off (the raw weights). 0.999 averages over about 1,000 steps.
    ema_decay: float = 0.0
    #: Training crops whose activity (imgcodec.train.data.activity) is below this are kept with
    #: probability activity / this, so that flat sky and walls do not take a third of the steps;
    #: 0 = every crop as drawn.
    flat_crop_activity: float = 0.0
    #: Weigh each crop's loss by the mean of the levels' running losses over its level's
    #: (imgcodec.train.balance), so that the low levels pull the shared weights as hard as the top ones.
    level_balance: bool = False
    #: Random channel orders and saturation stretches of the training crops
    #: (imgcodec.train.data.CropSampler), for colours that data/train holds little of.
    colour_augment: bool = False
    #: In a run of several processes: 0 = data-parallel (gradients all-reduced every step);
    #: K = local SGD, each process on its own and weights averaged every K steps
    #: (imgcodec.train.local_sgd), which leaves the cores to the arithmetic.
    sync_every: int = 0

    def __post_init__(self) -> None:
        if self.sync_every < 0:
            raise ValueError(f"sync_every must be >= 0, not {self.sync_every}")
        if self.sync_every and (self.ckpt_every % self.sync_every or self.val_every % self.sync_every):
            raise ValueError(f"sync_every ({self.sync_every}) must divide ckpt_every ({self.ckpt_every}) and "
                             f"val_every ({self.val_every}): checkpoints and validations see synchronized weights")
        if self.flat_crop_activity < 0:
            raise ValueError(f"flat_crop_activity must be >= 0, not {self.flat_crop_activity}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), not {self.ema_decay}")
        if self.distortion not in DISTORTIONS:
            raise ValueError(f"distortion must be one of {', '.join(DISTORTIONS)}, not {self.distortion!r}")

    def sigma_at(self, step: int) -> float:
        t = min(1.0, step / max(1, self.steps))
        return self.sigma_start * (self.sigma_end / self.sigma_start) ** t

    def lr_at(self, step: int) -> float:
        return self.lr * (0.1 if step >= self.lr_decay_at * self.steps else 1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """The schedule from a dict; a key that is not a field is an error (ValueError)."""
        return cls(**checked_fields(cls, data, "training config"))
