"""Training loop pieces: data sampling, checkpoints, and validation with real bitrates.

Used by ``scripts/train.py``; kept in the package so tests can exercise it on tiny data.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .autoencoder import SoftToHardAutoencoder
from .coder import decode_symbols, encode_symbols
from .config import ModelConfig, TrainConfig
from .context_prior import PriorTables


def load_images(folder: Path) -> list[np.ndarray]:
    """Every PNG/JPEG in folder as H,W,3 uint8 arrays (sorted by name for reproducibility)."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise FileNotFoundError(f"no images in {folder}; run scripts/fetch_data.py first")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


class CropSampler:
    """Random crops with random flips; the RNG state is saved in checkpoints for resuming."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop} pixels on its short side")
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        # Sample images proportionally to area, so every pixel is equally likely.
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)  # N,H,W,3
        for k in range(size):
            im = self.images[self.rng.choice(len(self.images), p=self.weights)]
            top = self.rng.integers(0, im.shape[0] - self.crop + 1)
            left = self.rng.integers(0, im.shape[1] - self.crop + 1)
            patch = im[top:top + self.crop, left:left + self.crop]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[k] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)  # N,3,H,W


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad N,C,H,W on the bottom/right to a multiple of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


@dataclass
class ValidationResult:
    level: int
    bpp_real: float
    bpp_estimate: float
    psnr: float


@torch.no_grad()
def validate(model: SoftToHardAutoencoder, images: list[np.ndarray], levels: list[int],
             prior: PriorTables | None = None) -> list[ValidationResult]:
    """Encode and decode every image through the range coder; mean real bpp and PSNR per level."""
    model.eval()
    prior = prior or model.prior.tabulate(model.sorted_centers())
    centers = model.sorted_centers()
    results = []
    for level in levels:
        real, est, psnrs = [], [], []
        for im in images:
            h, w = im.shape[:2]
            x = torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
            lv = torch.tensor([level])
            z = model.latent(pad_to_multiple(x, 8), lv)
            symbols = model.quantizer.symbols(z)[0].numpy()  # C,h,w
            payload = encode_symbols(symbols, prior, level)
            decoded = decode_symbols(payload, symbols.shape, prior, level)
            assert np.array_equal(decoded, symbols), "range coder round trip failed"
            x_hat = model.reconstruct(centers[torch.from_numpy(decoded).long()][None], lv).clamp(0, 1)[..., :h, :w]
            mse = (((x_hat * 255).round() - (x * 255).round()) ** 2).mean().item()
            real.append(8 * len(payload) / (h * w))
            est.append(prior.cross_entropy_bits(symbols, level) / (h * w))
            psnrs.append(10 * math.log10(255 ** 2 / max(mse, 1e-10)))
        results.append(ValidationResult(level, float(np.mean(real)), float(np.mean(est)), float(np.mean(psnrs))))
    model.train()
    return results


def save_checkpoint(path: Path, model: SoftToHardAutoencoder, optimizer: torch.optim.Optimizer,
                    step: int, train_cfg: TrainConfig, sampler: CropSampler, extra: dict[str, Any]) -> None:
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


def channel_activity_on_crops(model: SoftToHardAutoencoder, train_dir: Path) -> torch.Tensor:
    """warm_start.channel_activity on a fixed sample of 128 training crops of 64x64 (seeded, so
    that export_model.py --drop-channels-below and klt_bound.py measure the same thing). (C,)"""
    from .warm_start import channel_activity

    sampler = CropSampler(load_images(train_dir), 64, seed=1234)
    return channel_activity(model, [sampler.batch(16) for _ in range(8)])


def load_model(path: Path) -> tuple[SoftToHardAutoencoder, dict[str, Any]]:
    """Model (eval mode) and the raw checkpoint dict."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = SoftToHardAutoencoder(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    model.eval()
    return model, state
