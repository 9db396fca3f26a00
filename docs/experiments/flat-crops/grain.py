"""What a model makes of grain on smooth areas: in the flat 16x16 blocks of a photo (activity
below 4, imgcodec.train.data.activity), the high-pass energy of the decoded image against the
original's, and how much of the original's grain it reproduces (their correlation); and where
in scale the error lies (the error's energy in the bands of a 2x average-pooling pyramid:
1-2 pixels, 2-8 pixels, coarser), which MS-SSIM weighs unlike PSNR.

    python docs/experiments/flat-crops/grain.py checkpoints/shae-v8.pt checkpoints/shae-v9-training.pt \
        --images mate-backgrounds-Dune.png mate-backgrounds-GreenMeadow.png --levels 5 6 7

A decoder that cannot reproduce the grain does best (in MSE) to leave it out; one that outputs
grain of the original's energy at correlation r adds (2 - 2r) times its energy to the error
instead of 1 times.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from imgcodec.metrics import ms_ssim_rgb, psnr_rgb
from imgcodec.train.data import activity
from imgcodec.train.training import checkpoint_codec, load_model

BLOCK = 16
FLAT = 4.0


def high_pass(rgb: np.ndarray) -> np.ndarray:
    """The image minus its 5x5 box blur (edges replicated), H,W,3 float64."""
    x = rgb.astype(np.float64)
    padded = np.pad(x, ((2, 2), (2, 2), (0, 0)), mode="edge")
    blur = sum(padded[dy:dy + x.shape[0], dx:dx + x.shape[1]] for dy in range(5) for dx in range(5)) / 25
    return x - blur


def error_bands(rgb: np.ndarray, decoded: np.ndarray) -> tuple[float, float, float]:
    """Mean squared error of decoded against rgb split by scale: the finest octave (what a 2x2
    average loses), the next two octaves, and all that is coarser; the three sum to the MSE."""
    error = decoded.astype(np.float64) - rgb.astype(np.float64)
    height, width = error.shape[0] // 8 * 8, error.shape[1] // 8 * 8
    error = error[:height, :width]
    energies = []
    for _ in range(3):
        low = error.reshape(error.shape[0] // 2, 2, error.shape[1] // 2, 2, 3).mean(axis=(1, 3))
        energies.append(float(np.mean((error - low.repeat(2, 0).repeat(2, 1)) ** 2)))
        error = low
    # each band is orthogonal to the 2x2 block means it leaves, so per-pixel means add up
    return energies[0], energies[1] + energies[2], float(np.mean(error ** 2))


@torch.no_grad()
def first_stage(model: torch.nn.Module, rgb: np.ndarray, level: int) -> np.ndarray:
    """shae-v9's first-stage image (its 1/16 latent's synthesis, before the residual stage) at a
    level (1-based), nearest rounding, as uint8 H,W,3."""
    height, width = rgb.shape[:2]
    padded = np.pad(rgb, ((0, -height % 64), (0, -width % 64), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255  # 1,3,H,W
    t = model.cfg.transform_channels
    y = model.latent(x, level - 1)[:, :t]
    centers = model.quantizer.centers.detach().sort().values
    y_hat = centers[model.quantizer.symbols(y)] * model.log_inv_gain[level - 1, :t].exp()[None, :, None, None]
    image = model.first_stage(y_hat)[0].permute(1, 2, 0).numpy()[:height, :width]
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def flat_mask(rgb: np.ndarray) -> np.ndarray:
    """H,W bool: the pixels of the 16x16 blocks whose activity is below FLAT."""
    height, width = rgb.shape[0] // BLOCK * BLOCK, rgb.shape[1] // BLOCK * BLOCK
    mask = np.zeros(rgb.shape[:2], dtype=bool)
    for top in range(0, height, BLOCK):
        for left in range(0, width, BLOCK):
            if activity(rgb[top:top + BLOCK, left:left + BLOCK]) < FLAT:
                mask[top:top + BLOCK, left:left + BLOCK] = True
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=Path("data/detail"))
    parser.add_argument("--images", nargs="+", required=True)
    parser.add_argument("--levels", type=int, nargs="+", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from PIL import Image

    print("| model | photo | level | bpp | PSNR | MS-SSIM | error 1-2 px | 2-8 px | coarser | flat share | "
          "grain rms original | decoded | correlation | first stage's grain rms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.checkpoints:
        model = load_model(path)[0]
        codec = checkpoint_codec(model)
        label = path.parent.name if path.stem == "weights" else path.stem  # runs/NAME/weights.pt -> NAME
        for name in args.images:
            rgb = np.asarray(Image.open(args.data / name).convert("RGB"))
            mask = flat_mask(rgb)
            original = high_pass(rgb)[mask]
            for level in args.levels:
                encoded = codec.encode(rgb, level)
                decoded = codec.decode_bytes(encoded.data)[..., :3]
                grain = high_pass(decoded)[mask]
                correlation = float(np.corrcoef(original.ravel(), grain.ravel())[0, 1])
                bpp = 8 * len(encoded.data) / (rgb.shape[0] * rgb.shape[1])
                bands = " | ".join(f"{e:.2f}" for e in error_bands(rgb, decoded))
                first = (f"{high_pass(first_stage(model, rgb, level))[mask].std():.2f}"
                         if hasattr(model, "first_stage") else "")
                print(f"| {label} | {name} | {level} | {bpp:.3f} | {psnr_rgb(rgb, decoded):.2f} | "
                      f"{ms_ssim_rgb(rgb, decoded):.4f} | {bands} | {mask.mean():.0%} | {original.std():.2f} | "
                      f"{grain.std():.2f} | {correlation:.2f} | {first} |")


if __name__ == "__main__":
    main()
