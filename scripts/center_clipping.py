"""How much a shae-v9 checkpoint's outermost latent centers clip, and what the clipping costs.

    python scripts/center_clipping.py checkpoints/shae-v9-training.pt --split detail --images 6

A latent value beyond the outermost center is coded as that center. For each level this prints
the share of the gained latent's values beyond the centers, the largest magnitude, and the PSNR
of the synthesis from the nearest centers against the same with the values beyond the centers
passed through unclipped (everything else as coded): the PSNR that more centers would buy; and
the PSNR with no quantization at all (the gained latent straight into the synthesis): what the
transforms reach at that level, the ceiling that finer centers or more rate could approach (a
residual stage's part stays the one taken against the first stage's nearest-center image). Last,
the side latent's share beyond its centers, and its channels that sit mostly or wholly beyond
them (such a channel gets no gradient from the soft assignment, so it cannot come back), and
how many channels carry information at all: the entropy of each channel's symbols, pooled over
the crops and levels (for the latent, per level). Rate pressure collapses most side channels
to one symbol anyway (as in CompressAI's hyperprior models), so a dead channel costs capacity
only if few others are spare.
(docs/experiments/center-clipping measured the same for shae-v4 to shae-v7.)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from imgcodec.metrics import psnr_rgb
from imgcodec.train.data import load_images
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.training import load_model


def psnr(x_hat: torch.Tensor, photo: np.ndarray) -> float:
    """PSNR of the 8-bit rounding of x_hat (1,3,H,W in [0,1]) against the photo (H,W,3 uint8)."""
    pixels = (x_hat[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return psnr_rgb(pixels, photo)


@torch.no_grad()
def clipping(model: ShaeV9, photo: np.ndarray, level: int
             ) -> tuple[float, float, float, float, float, torch.Tensor, torch.Tensor, torch.Tensor]:
    """photo: H,W,3 uint8 -> (share of the latent beyond the centers, largest |value|, PSNR clipped,
    PSNR unclipped, PSNR unquantized, per side-latent channel the share beyond its centers: C_z,
    the side latent's symbols: C_z,h/64*w/64, the latent's symbols: M,h/16*w/16)."""
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255  # 1,3,H,W
    centers = model.quantizer.centers.detach().sort().values
    y = model.latent(x, level)  # 1,M,h,w
    inverse = model.log_inv_gain[level].exp()[None, :, None, None]
    symbols = model.quantizer.symbols(y)
    nearest = centers[symbols]
    beyond = (y > centers[-1]) | (y < centers[0])
    unclipped = torch.where(beyond, y, nearest)
    z_centers = model.hyper_quantizer.centers.detach()
    z = model.hyper_analysis(y)[0]  # C_z,h/4,w/4
    side = ((z > z_centers.max()) | (z < z_centers.min())).float().mean(dim=(1, 2))
    side_symbols = model.hyper_quantizer.symbols(z).flatten(1)
    return (float(beyond.float().mean()), float(y.abs().max()), psnr(model.reconstruct(nearest * inverse), photo),
            psnr(model.reconstruct(unclipped * inverse), photo), psnr(model.reconstruct(y * inverse), photo),
            side, side_symbols, symbols[0].flatten(1))


def entropy_bits(symbols: torch.Tensor) -> float:
    """Empirical entropy of a 1-D tensor of symbols, bits per symbol."""
    counts = symbols.unique(return_counts=True)[1].double()
    p = counts / counts.sum()
    return float(-(p * p.log2()).sum())


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
    crops = [np.array(p[:args.crop, :args.crop]) for p in photos]  # writable copies
    print(f"{args.checkpoint} (total step {state.get('total_steps', state.get('step'))}): {len(centers)} centers, "
          f"{float(centers.min()):.2f} .. {float(centers.max()):.2f}; {len(crops)} crops of {args.split}")
    print("level  beyond %  max |y|  PSNR clipped  PSNR unclipped  cost dB  PSNR unquantized  "
          "channels > 0.05 bit  > 1 bit")
    sides, side_symbols = [], []
    for level in args.levels:
        results = [clipping(model, crop, level - 1) for crop in crops]
        sides += [r[5] for r in results]
        side_symbols += [r[6] for r in results]
        rows = np.array([r[:5] for r in results])
        latent = torch.cat([r[7] for r in results], dim=1)  # M, every position of every crop
        live = np.array([entropy_bits(channel) for channel in latent])
        share, largest, clipped, free, exact = (rows[:, 0].mean(), rows[:, 1].max(), rows[:, 2].mean(),
                                                rows[:, 3].mean(), rows[:, 4].mean())
        print(f"{level:5d}  {100 * share:8.4f}  {largest:7.1f}  {clipped:12.2f}  {free:14.2f}  {free - clipped:7.3f}"
              f"  {exact:15.2f}  {int((live > 0.05).sum()):19d}  {int((live > 1).sum()):7d}")
    z_centers = model.hyper_quantizer.centers.detach()
    shares = torch.stack(sides).mean(0)
    print(f"side latent: {len(z_centers)} centers, {float(z_centers.min()):.2f} .. {float(z_centers.max()):.2f}; "
          f"{100 * float(shares.mean()):.1f} % of values beyond them; channels with more than half beyond: "
          f"{int((shares > 0.5).sum())} of {len(shares)}, all beyond: {int((shares > 0.999).sum())}")
    pooled = torch.cat(side_symbols, dim=1)  # C_z, every position of every crop and level
    entropies = np.array([entropy_bits(channel) for channel in pooled])
    print(f"side channels carrying information (> 0.05 bit per symbol): {int((entropies > 0.05).sum())} "
          f"of {len(entropies)}; more than 1 bit: {int((entropies > 1).sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
