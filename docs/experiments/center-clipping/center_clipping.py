"""Do the top levels run out of centers? Clipping at the outermost center, measured.

    python docs/experiments/center-clipping/center_clipping.py                    # shae-v4, top level
    python docs/experiments/center-clipping/center_clipping.py --checkpoint runs/v5/checkpoint.pt --level 9

For one level of a training checkpoint, on every validation photo: the scaled latent is
multiplied by m (a larger gain, as a higher level would learn) and quantized to the nearest
center, either the model's own centers or those plus `--extra` more on each side at the outer
spacing (imgcodec.warm_start's rule). The decoder gets the values divided by m again. Printed:
PSNR, the share of latents beyond the outermost center, the largest |latent|, and the zeroth-order
entropy of the symbols per channel in bpp (no context, fitted on these photos: a yardstick of how
the rate moves, not the coded rate).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from imgcodec.training import load_images, load_model, pad_to_multiple
from imgcodec.warm_start import _grown_centers


def zeroth_order_bits(symbols: np.ndarray) -> float:
    """Sum over channels of count * empirical entropy; symbols C,n."""
    bits = 0.0
    for row in symbols:
        _, counts = np.unique(row, return_counts=True)
        bits -= float((counts * np.log2(counts / counts.sum())).sum())
    return bits


@torch.no_grad()
def measure(model, images: list[np.ndarray], level: int, centers: torch.Tensor,
            mult: float) -> tuple[float, float, float, float]:
    """(mean PSNR, share beyond the outer centers, max |latent|, zeroth-order bpp)."""
    lv = torch.tensor([level])
    psnrs, rows, pixels, beyond, total, largest = [], [], 0, 0, 0, 0.0
    for image in images:
        x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255  # 1,3,H,W
        h, w = x.shape[-2:]
        padded = model.latent(pad_to_multiple(x, 64), lv) * mult  # 1,C,h',w'
        z = padded[..., :(h + 7) // 8, :(w + 7) // 8]  # the positions a .shae file codes
        beyond += int(((z < centers[0]) | (z > centers[-1])).sum())
        total += z.numel()
        largest = max(largest, float(z.abs().max()))
        index = (z.unsqueeze(-1) - centers).abs().argmin(dim=-1)  # 1,C,h,w
        values = centers[(padded.unsqueeze(-1) - centers).abs().argmin(dim=-1)]  # 1,C,h',w'
        x_hat = model.reconstruct(values / mult, lv)[..., :h, :w].clamp(0, 1)
        x_hat = (x_hat * 255).round() / 255  # as decoded to 8-bit pixels
        psnrs.append(10 * np.log10(1.0 / float(((x_hat - x) ** 2).mean())))
        rows.append(index[0].reshape(index.shape[1], -1).numpy())
        pixels += h * w
    bpp = zeroth_order_bits(np.concatenate(rows, axis=1)) / pixels
    return float(np.mean(psnrs)), beyond / total, largest, bpp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/shae-v4.pt"))
    parser.add_argument("--data", type=Path, default=Path("data/val"))
    parser.add_argument("--level", type=int, default=None, help="0-based; default the top level")
    parser.add_argument("--mult", type=float, nargs="+", default=[1.0, 1.4, 2.0, 2.8])
    parser.add_argument("--extra", type=int, default=12, help="extra centers per side")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, _ = load_model(args.checkpoint)
    model.eval()
    level = model.cfg.num_levels - 1 if args.level is None else args.level
    images = load_images(args.data)
    own = model.sorted_centers()
    extended = _grown_centers(own, args.extra)
    print(f"{args.checkpoint}, level {level} (quality {level + 1}), {len(images)} photos; "
          f"outermost centers {own[0]:.2f} / {own[-1]:.2f}, extended {extended[0]:.2f} / {extended[-1]:.2f}")
    print("| centers | gain x | PSNR dB | beyond outer | max abs latent | zeroth-order bpp |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, centers in ((f"own {len(own)}", own), (f"+{args.extra} per side", extended)):
        for mult in args.mult:
            psnr, share, largest, bpp = measure(model, images, level, centers, mult)
            print(f"| {label} | {mult:g} | {psnr:.2f} | {share:.5f} | {largest:.1f} | {bpp:.3f} |", flush=True)


if __name__ == "__main__":
    main()
