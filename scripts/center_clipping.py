"""How much a shae-v9 checkpoint's outermost latent centers clip, and what the clipping costs.

    python scripts/center_clipping.py checkpoints/shae-v9-training.pt --split detail --images 6

A latent value beyond the outermost center is coded as that center. For each level this prints
the share of the gained latent's values beyond the centers, the largest magnitude, and the PSNR
of the synthesis from the nearest centers against the same with the values beyond the centers
passed through unclipped (everything else as coded): the PSNR that more centers would buy. Last,
the side latent's share beyond its centers, and its channels that sit mostly or wholly beyond
them (such a channel gets no gradient from the soft assignment, so it cannot come back).
(docs/experiments/center-clipping measured the same for shae-v4 to shae-v7.)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from imgcodec.train.data import load_images
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.training import load_model


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """PSNR of the 8-bit rounding of x_hat (N,3,H,W in [0,1]) against x."""
    mse = ((x_hat.clamp(0, 1) * 255).round() / 255 - x).pow(2).mean()
    return float(10 * torch.log10(1 / mse))


@torch.no_grad()
def clipping(model: ShaeV9, x: torch.Tensor, level: int) -> tuple[float, float, float, float]:
    """x: 1,3,H,W -> (share beyond the centers, largest |value|, PSNR clipped, PSNR unclipped)."""
    centers = model.quantizer.centers.detach().sort().values
    y = model.analysis(x - 0.5) * model.log_gain[level].exp()[None, :, None, None]  # 1,M,h,w
    inverse = model.log_inv_gain[level].exp()[None, :, None, None]
    nearest = centers[model.quantizer.symbols(y)]
    beyond = (y > centers[-1]) | (y < centers[0])
    unclipped = torch.where(beyond, y, nearest)
    return (float(beyond.float().mean()), float(y.abs().max()),
            psnr(model.synthesis(nearest * inverse) + 0.5, x), psnr(model.synthesis(unclipped * inverse) + 0.5, x))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--split", default="detail")
    parser.add_argument("--images", type=int, default=6, help="the first N photos of the split")
    parser.add_argument("--crop", type=int, default=512, help="top-left crop of each photo (a multiple of 64)")
    parser.add_argument("--levels", type=int, nargs="*", default=[6, 8, 10], help="1-based")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, state = load_model(args.checkpoint)
    if not isinstance(model, ShaeV9):
        raise SystemExit(f"{args.checkpoint}: not a shae-v9 checkpoint")
    centers = model.quantizer.centers.detach()
    photos = load_images(args.data / args.split)[:args.images]
    crops = [torch.from_numpy(np.ascontiguousarray(p[:args.crop, :args.crop])).permute(2, 0, 1)[None].float() / 255
             for p in photos]
    print(f"{args.checkpoint} (total step {state.get('total_steps', state.get('step'))}): {len(centers)} centers, "
          f"{float(centers.min()):.2f} .. {float(centers.max()):.2f}; {len(crops)} crops of {args.split}")
    print("level  beyond %  max |y|  PSNR clipped  PSNR unclipped  cost dB")
    for level in args.levels:
        rows = np.array([clipping(model, x, level - 1) for x in crops])
        share, largest, clipped, free = rows[:, 0].mean(), rows[:, 1].max(), rows[:, 2].mean(), rows[:, 3].mean()
        print(f"{level:5d}  {100 * share:8.4f}  {largest:7.1f}  {clipped:12.2f}  {free:14.2f}  {free - clipped:7.3f}")
    z_centers = model.hyper_quantizer.centers.detach()
    with torch.no_grad():
        shares = torch.stack([side_beyond(model, x, level - 1) for x in crops for level in args.levels]).mean(0)
    print(f"side latent: {len(z_centers)} centers, {float(z_centers.min()):.2f} .. {float(z_centers.max()):.2f}; "
          f"{100 * float(shares.mean()):.1f} % of values beyond them; channels with more than half beyond: "
          f"{int((shares > 0.5).sum())} of {len(shares)}, all beyond: {int((shares > 0.999).sum())}")
    return 0


def side_beyond(model: ShaeV9, x: torch.Tensor, level: int) -> torch.Tensor:
    """Per side-latent channel, the share of its values beyond the outermost centers: C_z."""
    centers = model.hyper_quantizer.centers.detach()
    y = model.analysis(x - 0.5) * model.log_gain[level].exp()[None, :, None, None]
    z = model.hyper_analysis(y)[0]  # C_z,h/4,w/4
    return ((z > centers.max()) | (z < centers.min())).float().mean(dim=(1, 2))


if __name__ == "__main__":
    raise SystemExit(main())
