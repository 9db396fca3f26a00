"""How many latent channels a given PSNR needs: the linear (KLT/PCA) bound per 8x8 block.

    python scripts/klt_bound.py                       # data/train -> data/val, 8x8 RGB blocks
    python scripts/klt_bound.py --block 16 --keep 192 256 320
    python scripts/klt_bound.py --checkpoint checkpoints/shae-v8.pt   # also the model, unquantized
    python scripts/klt_bound.py --block 16 --keep 192 320 --split detail --train-blocks 200000

A latent of C channels at 1/8 resolution holds C numbers per 8x8x3 = 192-value block. The
best linear transform for keeping C of them is the KLT (principal components of the blocks);
its PSNR without quantization shows where C alone caps quality. A nonlinear transform can do
better, but not by much at this block size. With --checkpoint, the model's own PSNR at each
level is measured twice: with the latent quantized to its centers (what the codec does) and
unquantized (gain, then inverse gain), which is the transforms' ceiling.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from imgcodec.train.data import load_images


def blocks(images: list[np.ndarray], size: int) -> np.ndarray:
    """Every non-overlapping size x size RGB block as a row of size*size*3 values in [0, 1]."""
    rows = []
    for image in images:
        h, w = (image.shape[0] // size) * size, (image.shape[1] // size) * size
        x = image[:h, :w].astype(np.float64) / 255.0
        rows.append(x.reshape(h // size, size, w // size, size, 3).transpose(0, 2, 1, 3, 4).reshape(-1, size * size * 3))
    return np.concatenate(rows)


def klt_psnr(train: np.ndarray, test: np.ndarray, keep: list[int]) -> dict[int, float]:
    """PSNR of test blocks projected on the first k principal components of the train blocks."""
    mean = train.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov((train - mean).T))
    vectors = vectors[:, ::-1]  # largest variance first
    centred = test - mean
    out = {}
    for k in keep:
        basis = vectors[:, :k]
        mse = float((((centred @ basis) @ basis.T - centred) ** 2).mean())
        out[k] = 10 * np.log10(1.0 / mse)
    return out


def model_psnr(checkpoint: Path, images: list[np.ndarray]) -> list[tuple[int, float, float]]:
    """(quality, quantized PSNR, unquantized PSNR) of a training checkpoint, mean over images."""
    import torch

    from imgcodec.train.training import load_model

    model, _ = load_model(checkpoint)
    centers = model.sorted_centers().detach()
    rows = []
    with torch.no_grad():
        for level in range(model.cfg.num_levels):
            lv = torch.tensor([level])
            quantized, unquantized = [], []
            for image in images:
                h, w = (s - s % 8 for s in image.shape[:2])
                x = torch.from_numpy(np.array(image[:h, :w])).permute(2, 0, 1)[None].float() / 255.0  # 1,3,H,W
                z = model.latent(x, lv)  # 1,C,h,w
                hard = centers[model.quantizer.symbols(z)]
                for latent, out in ((hard, quantized), (z, unquantized)):
                    x_hat = model.reconstruct(latent, lv).clamp(0, 1)
                    out.append(10 * np.log10(1.0 / float(((x_hat - x) ** 2).mean())))
            rows.append((level + 1, float(np.mean(quantized)), float(np.mean(unquantized))))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--block", type=int, default=8)
    parser.add_argument("--keep", type=int, nargs="+", default=[24, 48, 64, 96, 128])
    parser.add_argument("--checkpoint", type=Path, default=None, help="also measure this shae-v1..v8 checkpoint")
    parser.add_argument("--split", default="val", help="the photos measured (val, detail)")
    parser.add_argument("--train-blocks", type=int, default=0,
                        help="fit the KLT on this many training blocks drawn at random (seed 0); 0: all")
    args = parser.parse_args(argv)
    train = blocks(load_images(args.data / "train"), args.block)
    if 0 < args.train_blocks < len(train):
        train = train[np.random.default_rng(0).choice(len(train), args.train_blocks, replace=False)]
    test = blocks(load_images(args.data / args.split), args.block)
    print(f"{args.block}x{args.block} RGB blocks: {len(train)} train, {len(test)} {args.split}")
    print(f"| channels kept | of | KLT PSNR on {args.split} (dB) |\n|---|---|---|")
    for k, psnr in klt_psnr(train, test, args.keep).items():
        print(f"| {k} | {args.block * args.block * 3} | {psnr:.2f} |")
    if args.checkpoint:
        print(f"\n{args.checkpoint}, {args.split} images:\n| quality | PSNR quantized | PSNR unquantized |\n|---|---|---|")
        for quality, quantized, unquantized in model_psnr(args.checkpoint, load_images(args.data / args.split)):
            print(f"| {quality} | {quantized:.2f} | {unquantized:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
