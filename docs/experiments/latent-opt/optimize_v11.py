"""Encoder-side latent optimisation for shae-v11: does it save bits at equal PSNR?

For each crop and level: the shipped encoder's symbols (rate-distortion rounding, as `shaec
encode`), then the latent that the PyTorch checkpoint's encoder gives, optimised by gradient
descent on lambda * 255^2 * MSE + bpp through the checkpoint's decoder and entropy model (the
training objective, with the decoder and the entropy model fixed: Campos et al., "Content
Adaptive Optimization for Neural Image Compression", CVPRW 2019; Yang et al., "Improving
Inference for Neural Image Compression", NeurIPS 2020). Its nearest symbols are then coded and
decoded by the shipped runtime (frozen integer tables, ONNX decoder): real payload bytes, real
pixels. The file format and the decoder do not change.

    python docs/experiments/latent-opt/optimize_v11.py --images 4 --levels 2 5 8 --steps 30 --estimator ste --method sgd --lr 2 \
        --out docs/experiments/latent-opt/results-v11/ste-sgd-2.csv
"""
from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imgcodec.codec import get_codec
from imgcodec.train.quantizer import WindowedQuantized
from imgcodec.train.shae_v9 import SOFT_WINDOW
from imgcodec.train.training import load_model


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255 ** 2 / mse)


def optimise(model: torch.nn.Module, x: torch.Tensor, level: int, steps: int, lr: float,
             sigma: tuple[float, float], estimator: str, method: str) -> torch.Tensor:
    """The gained latent 1,M,h,w after `steps` of Adam or SGD on the rate-distortion loss, hard
    values forward; backward through the soft assignment (estimator "soft", training's: sigma
    annealed geometrically from sigma[0] to sigma[1]) or, for the decoder's input, as the
    identity (estimator "ste", the rate still through the soft assignment)."""
    lam = model.cfg.lambdas[level]
    inverse = model.log_inv_gain[level].exp()[None, :, None, None].detach()
    with torch.no_grad():
        start = model.latent(x, level)
    y = start.clone().requires_grad_(True)
    optimiser = (torch.optim.Adam if method == "adam" else torch.optim.SGD)([y], lr=lr)
    pixels = x.shape[2] * x.shape[3]
    for step in range(steps):
        s = sigma[0] * (sigma[1] / sigma[0]) ** (step / max(1, steps - 1))
        model.quantizer.sigma = model.hyper_quantizer.sigma = s
        quantized = model.quantizer.windowed(y, SOFT_WINDOW)
        if estimator == "ste":
            quantized = WindowedQuantized(y + (quantized.values - y).detach(), *quantized[1:])
        x_hat = model.reconstruct(quantized.values * inverse)
        bits, _ = model.rate(y, quantized)
        loss = lam * 255 ** 2 * torch.mean((x_hat - x) ** 2) + bits.sum() / pixels
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return y.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/shae-v11.pt"))
    parser.add_argument("--model", default="shae-v11")
    parser.add_argument("--photos", type=Path, default=Path("data/detail-half"))
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--levels", type=int, nargs="+", default=[2, 5, 8])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--sigma", type=float, nargs=2, default=(10.0, 10.0))
    parser.add_argument("--estimator", choices=("soft", "ste"), default="soft")
    parser.add_argument("--method", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.checkpoint)
    for p in model.parameters():
        p.requires_grad_(False)
    codec = get_codec(args.model)
    tables = codec.tables
    rows = []
    for path in sorted(args.photos.iterdir())[:args.images]:
        image = np.asarray(Image.open(path).convert("RGB"))
        top, left = (image.shape[0] - args.crop) // 2, (image.shape[1] - args.crop) // 2
        crop = np.ascontiguousarray(image[top:top + args.crop, left:left + args.crop])
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0
        pixels = args.crop * args.crop
        for quality in args.levels:
            level = quality - 1
            payload, _, symbols = codec.encode_symbols(crop, level, 0, codec._tau(level, 0))
            base = codec.pixels_of(symbols, level, args.crop, args.crop)
            started = time.perf_counter()
            y = optimise(model, x, level, args.steps, args.lr, tuple(args.sigma), args.estimator, args.method)
            seconds = time.perf_counter() - started
            with torch.no_grad():
                y_symbols = model.quantizer.symbols(y)[0].numpy().astype(np.int32)
                z_symbols = model.hyper_quantizer.symbols(model.hyper_analysis(y).float())[0].numpy().astype(np.int32)
            optimised_payload, _, _ = tables.encode_choosing(y_symbols, z_symbols)
            optimised = codec.pixels_of(y_symbols, level, args.crop, args.crop)
            lam = model.cfg.lambdas[level]
            row = {"photo": path.name, "level": quality,
                   "bpp": 8 * len(payload) / pixels, "psnr": psnr(crop, base),
                   "opt_bpp": 8 * len(optimised_payload) / pixels, "opt_psnr": psnr(crop, optimised),
                   "seconds": seconds}
            # the objective on real bytes and pixels: lambda * 255^2 * MSE + bpp
            row["loss"] = lam * 255 ** 2 * 10 ** (-row["psnr"] / 10) + row["bpp"]
            row["opt_loss"] = lam * 255 ** 2 * 10 ** (-row["opt_psnr"] / 10) + row["opt_bpp"]
            rows.append(row)
            print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    if args.out:
        with args.out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
