"""How many latent channels a given PSNR needs: the linear (KLT/PCA) bound per 8x8 block.

    python scripts/klt_bound.py                       # data/train -> data/val, 8x8 RGB blocks
    python scripts/klt_bound.py --block 16 --keep 192 256 320
    python scripts/klt_bound.py --checkpoint checkpoints/shae-v1.pt   # also the model: unquantized, busy channels

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

from imgcodec.training import load_images


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
    """(level, quantized PSNR, unquantized PSNR) of a training checkpoint, mean over images."""
    import torch

    from imgcodec.training import load_model, pad_to_multiple

    model, _ = load_model(checkpoint)
    centers = model.sorted_centers()
    rows = []
    with torch.no_grad():
        for level in range(model.cfg.num_levels):
            lv = torch.tensor([level])
            quantized, unquantized = [], []
            for image in images:
                h, w = image.shape[:2]
                x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0  # 1,3,H,W
                z = model.latent(pad_to_multiple(x, 8), lv)  # 1,C,h,w
                for latent, out in ((centers[model.quantizer.hard(z)], quantized), (z, unquantized)):
                    x_hat = model.reconstruct(latent, lv).clamp(0, 1)[..., :h, :w]
                    out.append(10 * np.log10(1.0 / float(((x_hat - x) ** 2).mean())))
            rows.append((level + 1, float(np.mean(quantized)), float(np.mean(unquantized))))
    return rows


def busy_channels(checkpoint: Path, train_dir: Path) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Per latent channel, its busiest level's share of non-zero symbols on 128 training crops
    (the measure export_model.py --drop-channels-below uses) and its gain at the top level; and,
    for a run grown with more channels (train.py --init), the index of its first new channel."""
    from imgcodec.training import channel_activity_on_crops, load_model

    model, state = load_model(checkpoint)
    busy = channel_activity_on_crops(model, train_dir).numpy()
    top_gain = model.log_gain[-1].detach().exp().numpy()
    first_new = state.get("train_config", {}).get("extra", {}).get("new_channels_from")
    return busy, top_gain, (first_new if first_new is not None and first_new < len(busy) else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--block", type=int, default=8)
    parser.add_argument("--keep", type=int, nargs="+", default=[24, 48, 64, 96, 128])
    parser.add_argument("--checkpoint", type=Path, default=None, help="also measure this training checkpoint")
    args = parser.parse_args(argv)
    train = blocks(load_images(args.data / "train"), args.block)
    test = blocks(load_images(args.data / "val"), args.block)
    print(f"{args.block}x{args.block} RGB blocks: {len(train)} train, {len(test)} val")
    print("| channels kept | of | KLT PSNR on val (dB) |\n|---|---|---|")
    for k, psnr in klt_psnr(train, test, args.keep).items():
        print(f"| {k} | {args.block * args.block * 3} | {psnr:.2f} |")
    if args.checkpoint:
        print(f"\n{args.checkpoint}, val images:\n| quality | PSNR quantized | PSNR unquantized |\n|---|---|---|")
        for quality, quantized, unquantized in model_psnr(args.checkpoint, load_images(args.data / "val")):
            print(f"| {quality} | {quantized:.2f} | {unquantized:.2f} |")
        busy, top_gain, first_new = busy_channels(args.checkpoint, args.data / "train")
        print(f"\nlatent channels busy (off the zero center) at >= 0.5 % of positions at some level, "
              f"on training crops: {int((busy >= 0.005).sum())} of {len(busy)}")
        if first_new is not None:
            old, new = busy[:first_new], busy[first_new:]
            print(f"share of positions off the zero center at the busiest level, median (min-max): "
                  f"old channels {np.median(old):.3f} ({old.min():.3f}-{old.max():.3f}), "
                  f"new channels {first_new}-{len(busy) - 1}: {np.median(new):.3f} ({new.min():.3f}-{new.max():.3f}); "
                  f"new ones at >= 5 %: {int((new >= 0.05).sum())} of {len(new)}")
            # How a channel goes silent: does its gain fall (the latent shrinks into the zero bin)?
            groups = {"old": top_gain[:first_new], "new, busy >= 5 %": top_gain[first_new:][new >= 0.05],
                      "new, busy < 5 %": top_gain[first_new:][new < 0.05]}
            print("gain at the top level, median (min-max): " + "; ".join(
                f"{name} {np.median(g):.2f} ({g.min():.2f}-{g.max():.2f})" for name, g in groups.items() if len(g)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
