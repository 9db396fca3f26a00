"""Fine-tune a shipped model's decoder on the symbols its own encoder writes.

The transforms were trained on nearest-center rounding, but the shipped encoder rounds for rate
and distortion together (imgcodec.rounding.rd_choice): it moves values to cheaper centers, which
costs 0.3-0.7 dB at the same level (`shaec roundtrip PHOTO --rounding nearest` against `rd`). A
decoder trained on the symbols that files really hold can take part of that back: the encoder,
the entropy model and the rounding stay as they are, so the file of an image keeps its first
stage's symbols, and only the picture decoded from them changes. This is the decoder-side half
of the train-test gap that Yang, Bamler and Mandt (NeurIPS 2020) close on the encoder side.

`coded_examples` runs the shipped runtime encoder (integer entropy model, real rounding) over
training crops and keeps their symbols; `DecoderTuner` trains the checkpoint's synthesis on them
with the rest of the model frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..codec_v9 import ShaeV9Codec
from ..config import ShaeV9Config
from .data import CropSampler
from .shae_v9 import ShaeV9


@dataclass(frozen=True)
class CodedExamples:
    """Training crops with the symbols the shipped encoder writes for them."""

    crops: np.ndarray  # N,H,W,3 uint8
    symbols: np.ndarray  # N,M,h,w uint8: sorted-center indices, both stages
    levels: np.ndarray  # N int64, 0-based

    def __post_init__(self) -> None:
        n = len(self.crops)
        if len(self.symbols) != n or len(self.levels) != n:
            raise ValueError("crops, symbols and levels must have the same length")

    def save(self, path: str) -> None:
        np.savez(path, crops=self.crops, symbols=self.symbols, levels=self.levels)

    @classmethod
    def load(cls, path: str) -> "CodedExamples":
        with np.load(path) as data:
            return cls(data["crops"], data["symbols"], data["levels"])

    @classmethod
    def concatenate(cls, parts: list["CodedExamples"]) -> "CodedExamples":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("crops", "symbols", "levels")))


def coded_examples(codec: ShaeV9Codec, sampler: CropSampler, count: int, levels_per_crop: int,
                   seed: int) -> CodedExamples:
    """`count` crops from the sampler, each coded at `levels_per_crop` distinct random levels by the
    shipped encoder (the analysis runs once per crop): one example per crop and level."""
    rng = np.random.default_rng(seed)
    num_levels = len(codec.gains)
    chosen = [(crop, rng.choice(num_levels, size=levels_per_crop, replace=False)) for crop in sampler.batch(count)]
    return coded_images(codec, chosen)


def coded_images(codec: ShaeV9Codec, images: list[tuple[np.ndarray, np.ndarray]]) -> CodedExamples:
    """Each image (H,W,3 uint8, sides multiples of 64) coded at each of its levels (0-based) as
    `shaec encode` codes it (the model's rate-distortion rounding): one example per image and level."""
    if codec.y_centers.shape[0] > 256:
        raise ValueError("symbols are stored as uint8: at most 256 centers")
    crops, symbols, levels = [], [], []
    for image, image_levels in images:
        if image.shape[0] % 64 or image.shape[1] % 64:
            raise ValueError(f"image sides must be multiples of 64, got {image.shape[1]}x{image.shape[0]}")
        latent = codec.analysis(image)
        for level in image_levels:
            _, _, y_symbols = codec.encode_symbols(image, int(level), 0, codec._tau(int(level), 0), latent)
            crops.append(image)
            symbols.append(y_symbols.astype(np.uint8))
            levels.append(int(level))
    return CodedExamples(np.stack(crops), np.stack(symbols), np.array(levels, dtype=np.int64))


class DecoderTuner:
    """Trains a ShaeV9 model's synthesis (both stages, refine blocks included) on coded examples; everything that the
    encoder or the entropy model uses stays frozen, inverse gains included (they also weigh the
    encoder's rounding). The loss is each example's MSE over its level's running mean, so that
    every level's relative error counts alike (as --level-balance in training)."""

    def __init__(self, model: torch.nn.Module, lr: float, bf16: bool, refine_lr: float | None = None) -> None:
        self.model = model
        self.bf16 = bf16
        trained = list(model.synthesis.parameters())
        if model.detail_synthesis is not None:
            trained += list(model.detail_synthesis.parameters())
        refine = [] if model.refine is None else list(model.refine.parameters())
        for p in model.parameters():
            p.requires_grad_(False)
        for p in trained + refine:
            p.requires_grad_(True)
        groups = [{"params": trained, "lr": lr}]
        if refine:  # blocks that start from scratch learn at their own rate
            groups.append({"params": refine, "lr": lr if refine_lr is None else refine_lr})
        self.optimizer = torch.optim.Adam(groups)
        num_levels = model.log_gain.shape[0]
        self.running = torch.full((num_levels,), float("nan"))

    def decoded(self, symbols: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """symbols N,M,h,w (long), levels N -> x_hat N,3,H,W in [0,1] scale (unclipped)."""
        centers = self.model.quantizer.centers.detach().sort().values
        inv_gain = self.model.log_inv_gain[levels].detach().exp()[:, :, None, None]  # N,M,1,1
        y_hat = centers[symbols] * inv_gain
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.model.reconstruct(y_hat)

    def step(self, crops: torch.Tensor, symbols: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """One Adam step on a batch (crops N,3,H,W in [0,1]); returns each example's MSE."""
        self.model.train()
        x_hat = self.decoded(symbols, levels)
        mse = ((x_hat - crops) ** 2).mean(dim=(1, 2, 3))  # N
        with torch.no_grad():
            for level, value in zip(levels.tolist(), mse.detach().tolist()):
                old = self.running[level]
                self.running[level] = value if torch.isnan(old) else 0.99 * old + 0.01 * value
        loss = (mse / self.running[levels]).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return mse.detach()


def batch_tensors(examples: CodedExamples, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Examples at `index` -> (crops N,3,H,W float in [0,1], symbols N,M,h,w long, levels N long)."""
    crops = torch.from_numpy(examples.crops[index]).permute(0, 3, 1, 2).float() / 255.0
    return crops, torch.from_numpy(examples.symbols[index]).long(), torch.from_numpy(examples.levels[index])


@torch.no_grad()
def psnr_by_level(tuner: DecoderTuner, examples: CodedExamples, batch: int = 8) -> dict[int, float]:
    """Mean PSNR (dB, decoded image rounded to 8 bits) of the examples at each level."""
    tuner.model.eval()
    sums: dict[int, list[float]] = {}
    for start in range(0, len(examples.levels), batch):
        crops, symbols, levels = batch_tensors(examples, np.arange(start, min(start + batch, len(examples.levels))))
        x_hat = (tuner.decoded(symbols, levels).float().clamp(0, 1) * 255).round() / 255
        mse = ((x_hat - crops) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
        for level, value in zip(levels.tolist(), (10 * torch.log10(1 / mse)).tolist()):
            sums.setdefault(level, []).append(value)
    return {level: float(np.mean(values)) for level, values in sorted(sums.items())}


def with_refine_blocks(model: ShaeV9, blocks: int) -> ShaeV9:
    """The model with `blocks` new refine blocks in its synthesis (ShaeV9Config.refine_blocks, on
    top of any it has), its other weights copied; the new blocks start as identities."""
    cfg = ShaeV9Config.from_dict({**model.cfg.to_dict(), "refine_blocks": model.cfg.refine_blocks + blocks})
    grown = ShaeV9(cfg)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not name.startswith("refine.") for name in missing):
        raise ValueError(f"cannot grow refine blocks: missing {missing}, unexpected {unexpected}")
    return grown.eval()

