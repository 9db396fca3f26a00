"""Checkpoints, and a checkpoint as a codec for imgcodec.evaluation (real bytes, no export)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import bitstream
from ..bitstream import SEGMENT_LATENT, Segment, ShaeFile
from ..config import ModelConfig
from .config import TrainConfig
from .data import CropSampler
from .model import FrozenParts, ShaeV8

#: Keys of checkpoints written before the shipped layout became the only one, with the only
#: value this version accepts (shae-v8.pt has level_modulation: true).
_RETIRED_CONFIG_KEYS = {"level_modulation": True}


def model_config_of(saved: dict[str, Any]) -> ModelConfig:
    """The ModelConfig a checkpoint recorded; retired switches must hold the shipped value."""
    saved = dict(saved)
    for key, shipped in _RETIRED_CONFIG_KEYS.items():
        if key in saved and saved.pop(key) != shipped:
            raise ValueError(f"checkpoint has {key}={not shipped}: a retired layout (see docs/history.md)")
    return ModelConfig.from_dict(saved)


def save_checkpoint(path: Path, model: ShaeV8, optimizer: torch.optim.Optimizer, step: int,
                    train_cfg: TrainConfig, sampler: CropSampler, extra: dict[str, Any]) -> None:
    """Atomic save (temp file + rename) so a killed run never leaves a broken checkpoint."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "model_config": model.cfg.to_dict(),
        "train_config": train_cfg.to_dict(),
        "sampler_rng": sampler.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_model(path: Path) -> tuple[ShaeV8, dict[str, Any]]:
    """Model (eval mode) and the raw checkpoint dict."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = ShaeV8(model_config_of(state["model_config"]))
    model.load_state_dict(state["model"])
    model.eval()
    return model, state


@dataclass(frozen=True)
class CheckpointEncoded:
    data: bytes  # a complete .shae file (model id zero: it names no installed model)
    estimated_bits: float


class CheckpointCodec:
    """A torch model through the real coder and container, for imgcodec.evaluation.evaluate:
    the same numbers a shipped export would give, up to ONNX-vs-torch float rounding."""

    def __init__(self, model: ShaeV8, rounding_tau: np.ndarray | None = None) -> None:
        self.model = model.eval()
        self.frozen: FrozenParts = model.freeze()
        self.tau = np.zeros(model.cfg.num_levels) if rounding_tau is None else rounding_tau

    @property
    def qualities(self) -> list[int]:
        return list(range(1, self.model.cfg.num_levels + 1))

    def encode(self, image: np.ndarray, quality: int | None = None) -> CheckpointEncoded:
        level = (quality or 1) - 1
        payload, symbols = self.model.compress(image[..., :3], level, self.frozen, float(self.tau[level]))
        shae = ShaeFile(bytes(8), level + 1, image.shape[1], image.shape[0], (Segment(SEGMENT_LATENT, payload),))
        return CheckpointEncoded(bitstream.pack(shae), self.frozen.prior.cross_entropy_bits(symbols, level))

    def decode_bytes(self, data: bytes) -> np.ndarray:
        shae = bitstream.unpack(data)
        payload = shae.segment(SEGMENT_LATENT).payload
        return self.model.decompress(payload, shae.level - 1, shae.width, shae.height, self.frozen)
