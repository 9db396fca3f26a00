"""The trainable architectures by name: config class, model class, and what training needs to know.

Each shipped architecture is a named class (imgcodec.train.shae_v8.ShaeV8, shae_v9.ShaeV9), and
every checkpoint records which one it holds, so that scripts/train.py can resume either.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..config import ModelConfig, ShaeV9Config
from .shae_v8 import ShaeV8
from .shae_v9 import ShaeV9


@dataclass(frozen=True)
class Architecture:
    name: str
    config_type: Any
    model_type: type[nn.Module]
    multiple: int  # image sides must be multiples of this (the latent's downscaling, or the side latent's)

    def config(self, values: dict[str, Any] | None = None) -> Any:
        """The default config with `values` over it; unknown keys are an error."""
        return self.config_type.from_dict({**self.config_type().to_dict(), **(values or {})})


ARCHITECTURES: dict[str, Architecture] = {
    "shae-v8": Architecture("shae-v8", ModelConfig, ShaeV8, multiple=8),
    "shae-v9": Architecture("shae-v9", ShaeV9Config, ShaeV9, multiple=64),
}


def architecture_of(state: dict[str, Any]) -> Architecture:
    """The architecture a checkpoint holds (checkpoints from before the field are shae-v8's layout)."""
    name = state.get("architecture", "shae-v8")
    if name not in ARCHITECTURES:
        raise ValueError(f"checkpoint holds unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[name]
