"""How much rate-distortion the encoder leaves on the table: optimise the latent of each image.

    python docs/experiments/latent-opt/latent_opt.py --checkpoint checkpoints/shae-v5.pt

For each validation photo (a 256x256 centre crop) and level, the analysis transform's latent is
the starting point; Adam then moves the latent itself (decoder, centers and prior frozen) to
lower the training loss lambda * 255^2 * MSE + bpp, through the same soft-to-hard quantizer
(hard forward, soft gradient) as training. The result is quantized to the nearest centers and
measured like a file: PSNR of the 8-bit reconstruction, and the prior's cross-entropy in bpp.
The drop of the loss is the amortization gap of the encoder (the optimisation of a single
latent per image, as in Campos et al. 2019, "Content adaptive optimization for neural image
compression", and Yang et al., NeurIPS 2020): what a better encoder could gain without any
change to the decoder or to the file format.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from imgcodec.training import load_images, load_model


def rd(model, z: torch.Tensor, level: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    """(PSNR of the 8-bit reconstruction, bpp by the prior) of latent z quantized to centers."""
    centers = model.sorted_centers()
    with torch.no_grad():
        indices = model.quantizer.hard(z)  # N,C,h,w
        values = model.quantizer.centers[indices]
        x_hat = model.reconstruct(values, level).clamp(0, 1)
        mse = float((((x_hat * 255).round() - (x * 255).round()) ** 2).mean()) / 255 ** 2
        logp = torch.log_softmax(model.prior(values, level, centers), dim=-1)  # N,C,h,w,L
        bits = -float(logp.gather(-1, indices[..., None]).sum()) / math.log(2.0)
    return 10 * math.log10(1.0 / mse), bits / (x.shape[2] * x.shape[3])


def optimise(model, x: torch.Tensor, level: torch.Tensor, iters: int, lr: float, sigma: float) -> torch.Tensor:
    lam = model.cfg.lambdas[int(level[0])]
    centers = model.sorted_centers()
    with torch.no_grad():
        z = model.latent(x, level)  # 1,C,h,w
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(iters):
        q = model.quantizer(z, sigma)
        bits = model.prior.bits(q.values, q.soft, q.indices, level, centers)
        mse = ((model.reconstruct(q.values, level) - x) ** 2).mean()
        loss = lam * 255 ** 2 * mse + bits.sum() / (x.shape[2] * x.shape[3])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return z.detach()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/val"))
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 5, 8, 10], help="1-based qualities")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--sigma", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, _ = load_model(args.checkpoint)
    for p in model.parameters():
        p.requires_grad_(False)
    crops = []
    for image in load_images(args.data):
        top, left = (image.shape[0] - args.crop) // 2, (image.shape[1] - args.crop) // 2
        patch = image[top:top + args.crop, left:left + args.crop]
        crops.append(torch.from_numpy(np.array(patch)).permute(2, 0, 1)[None].float() / 255.0)  # 1,3,H,W
    print(f"{args.checkpoint}: {len(crops)} crops of {args.crop}x{args.crop}, {args.iters} Adam steps "
          f"(lr {args.lr}, sigma {args.sigma})\n")
    print("| quality | encoder bpp | encoder PSNR | optimised bpp | optimised PSNR | loss drop |")
    print("|---:|---:|---:|---:|---:|---:|")
    for quality in args.levels:
        level = torch.tensor([quality - 1])
        lam = model.cfg.lambdas[quality - 1]
        rows = []
        for x in crops:
            with torch.no_grad():
                p0, b0 = rd(model, model.latent(x, level), level, x)
            p1, b1 = rd(model, optimise(model, x, level, args.iters, args.lr, args.sigma), level, x)
            j0, j1 = (lam * 255 ** 2 * 10 ** (-p / 10) + b for p, b in ((p0, b0), (p1, b1)))
            rows.append((b0, p0, b1, p1, 1 - j1 / j0))
        b0, p0, b1, p1, drop = np.mean(rows, axis=0)
        print(f"| {quality} | {b0:.4f} | {p0:.2f} | {b1:.4f} | {p1:.2f} | {100 * drop:.1f} % |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
