"""Checkpoints, and a checkpoint as a codec for imgcodec.evaluation (real bytes, no export)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import bitstream
from ..bitstream import SEGMENT_LATENT, Segment, ShaeFile
from ..config import ModelConfig
from ..imageio import atomic_write
from .config import TrainConfig
from .data import CropSampler
from .shae_v8 import FrozenParts, ShaeV8
from .shae_v9 import ShaeV9

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


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam over two groups: the entropy model and the per-level parameters at 10x the rate of
    the rest ("lr_scale"). The entropy model starts from a flat distribution and each level's
    parameters see only the samples drawn at that level, so both learn faster, like CompressAI's
    separate entropy-model optimizer."""
    fast_params = (list(model.prior.parameters()) if isinstance(model, ShaeV8) else model.entropy_parameters()) \
        + model.level_parameters()
    fast_ids = {id(p) for p in fast_params}
    return torch.optim.Adam([
        {"params": [p for p in model.parameters() if id(p) not in fast_ids], "lr_scale": 1.0},
        {"params": fast_params, "lr_scale": 10.0},
    ], lr=lr)


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    train_cfg: TrainConfig, sampler: CropSampler, extra: dict[str, Any]) -> None:
    """Atomic save (temp file + rename) so a killed run never leaves a broken checkpoint."""
    from .architectures import ARCHITECTURES

    name = next(a.name for a in ARCHITECTURES.values() if isinstance(model, a.model_type))
    state = {
        "architecture": name,
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


def load_model(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Model (eval mode, float32) of any architecture, and the raw checkpoint dict."""
    from .architectures import architecture_of

    state = torch.load(path, map_location="cpu", weights_only=False)
    arch = architecture_of(state)
    cfg = model_config_of(state["model_config"]) if arch.name == "shae-v8" else arch.config(state["model_config"])
    model = arch.model_type(cfg)
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    model.eval()
    return model, state


def save_weights(path: Path, model: torch.nn.Module, state: dict[str, Any], dtype: torch.dtype) -> None:
    """The weights alone (no optimizer), in `dtype`, to commit and continue from with --init: a
    shae-v9 checkpoint in bfloat16 stays under 16 MB."""
    save_weight_tensors(path, model.state_dict(), state, dtype)


def save_weight_tensors(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any],
                        dtype: torch.dtype) -> None:
    """save_weights for a state dict (weights averaged outside a module, scripts/average_weights.py)."""
    keep = {k: state[k] for k in ("architecture", "model_config", "train_config", "step", "cpu_seconds",
                                  "gpu_seconds", "total_steps", "total_cpu_hours", "total_gpu_hours", "init",
                                  "averaged") if k in state}
    weights = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({**keep, "model": weights, "weights_dtype": str(dtype)}, tmp)
    os.replace(tmp, path)


def save_state(path: Path, state: dict[str, Any], force: bool = False) -> None:
    """A checkpoint dict (a grown or pruned model for --init) written atomically, its folder made;
    an existing file is replaced only with force (imgcodec.imageio.atomic_write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(state, fh), force=force)


def rewrite_checkpoint(source: Path, out: Path, change: Callable[[dict[str, Any]], dict[str, Any]],
                       force: bool = False) -> dict[str, Any]:
    """Load the checkpoint at source, save change(it) at out (save_state) and return that. An
    existing out without force, or a checkpoint that change refuses (ValueError), is a
    ValueError naming the file, for a script's one-line error."""
    if out.exists() and not force:
        raise ValueError(f"{out} exists; use -f to replace it")
    state = torch.load(source, map_location="cpu", weights_only=False)
    try:
        changed = change(state)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    save_state(out, changed, force)
    return changed


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


class ShaeV9CheckpointCodec:
    """CheckpointCodec for shae-v9: the torch transforms with the frozen integer entropy model
    (ShaeV9.frozen_tables), so validation measures real bytes. Images are padded to a multiple
    of 64 by repeating the edge and cropped back after decoding."""

    MULTIPLE = 64

    def __init__(self, model: ShaeV9) -> None:
        self.model = model.eval()
        self.tables = model.frozen_tables()

    @property
    def qualities(self) -> list[int]:
        return list(range(1, self.model.cfg.num_levels + 1))

    def _padded(self, image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        ph, pw = -h % self.MULTIPLE, -w % self.MULTIPLE
        padded = np.pad(image[..., :3], ((0, ph), (0, pw), (0, 0)), mode="edge")
        return torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float() / 255.0

    @torch.no_grad()
    def encode(self, image: np.ndarray, quality: int | None = None) -> CheckpointEncoded:
        level = (quality or 1) - 1
        x = self._padded(image)
        payload = self.model.compress(x, level, self.tables)
        estimate = float(self.model(x, torch.tensor([level]))["bits"])
        shae = ShaeFile(bytes(8), level + 1, image.shape[1], image.shape[0], (Segment(SEGMENT_LATENT, payload),))
        return CheckpointEncoded(bitstream.pack(shae), estimate)

    @torch.no_grad()
    def decode_bytes(self, data: bytes) -> np.ndarray:
        shae = bitstream.unpack(data)
        height, width = (-(-s // self.MULTIPLE) * self.MULTIPLE for s in (shae.height, shae.width))
        x_hat = self.model.decompress(shae.segment(SEGMENT_LATENT).payload, shae.level - 1, height, width, self.tables)
        pixels = (x_hat[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        return np.ascontiguousarray(pixels[:shae.height, :shae.width])


def checkpoint_codec(model: torch.nn.Module) -> "CheckpointCodec | ShaeV9CheckpointCodec":
    """The real-bytes codec of a trained model of any architecture."""
    return ShaeV9CheckpointCodec(model) if isinstance(model, ShaeV9) else CheckpointCodec(model)
