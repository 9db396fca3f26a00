"""Diagnostic: would a richer context prior save bits? Count-based conditional entropies.

The shipped prior conditions each symbol on its left and top neighbours in the same channel.
This measures, for a model's hard symbols, the cross-entropy on the validation photos of
count tables learned on the training photos (central crops <= 512, add-1/2 smoothing), with
the baseline context (left, top; clipped to +-4 centers) and with richer ones:
top-left and top-right neighbours, the previous channel's symbol at the same position, and the
activity (log2 of 1 + sum of |symbol - middle|) of all earlier channels there.

    python docs/experiments/context-entropy/context_entropy.py --model checkpoints/shae-v2.pt
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from imgcodec.training import load_images, load_model, pad_to_multiple

EXTRA = (["left", "top", "tl", "tr"], ["left", "top", "parent"], ["left", "top", "act"],
         ["left", "top", "act", "parent"])


def symbols_per_level(model, images: list[np.ndarray], crop: int | None) -> list[list[np.ndarray]]:
    """[level][image] -> symbols C,h,w."""
    out: list[list[np.ndarray]] = [[] for _ in range(model.cfg.num_levels)]
    with torch.no_grad():
        for image in images:
            if crop:
                h, w = image.shape[:2]
                ch, cw = min(h, crop) // 8 * 8, min(w, crop) // 8 * 8
                image = image[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
            x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0  # 1,3,H,W
            for level in range(model.cfg.num_levels):
                z = model.latent(pad_to_multiple(x, 8), torch.tensor([level]))
                out[level].append(model.quantizer.symbols(z)[0].numpy())
    return out


def features(symbols: np.ndarray, mid: int) -> dict[str, np.ndarray]:
    """Context features of every symbol (C,h,w each); -1 / the last code marks outside."""
    s = symbols.astype(np.int64)
    p = np.pad(s, ((0, 0), (1, 0), (1, 1)), constant_values=-1)

    def clip(v: np.ndarray, k: int) -> np.ndarray:
        return np.where(v < 0, 2 * k + 1, np.clip(v - mid, -k, k) + k)

    magnitude = np.abs(s - mid)
    earlier = np.cumsum(magnitude, axis=0) - magnitude
    return {"s": s, "left": clip(p[:, 1:, :-2], 4), "top": clip(p[:, :-1, 1:-1], 4),
            "tl": clip(p[:, :-1, :-2], 2), "tr": clip(p[:, :-1, 2:], 2),
            "parent": np.concatenate([np.zeros((1,) + s.shape[1:], np.int64), clip(s[:-1], 2)]),
            "act": np.minimum(np.floor(np.log2(1 + earlier)).astype(np.int64), 9)}


def cross_entropy_bpp(train: list[np.ndarray], val: list[np.ndarray], keys: list[str], num_centers: int) -> float:
    mid = (num_centers - 1) // 2

    def context(f: dict[str, np.ndarray]) -> np.ndarray:
        k = np.zeros_like(f["s"])
        for key in keys:
            k = k * 16 + f[key]
        return k + np.arange(f["s"].shape[0])[:, None, None] * 16 ** len(keys)  # per channel

    feats = [features(a, mid) for a in train]
    ctx = np.concatenate([context(f).ravel() for f in feats])
    sym = np.concatenate([f["s"].ravel() for f in feats])
    keys_seen, inverse = np.unique(ctx, return_inverse=True)
    counts = np.full((len(keys_seen), num_centers), 0.5)
    np.add.at(counts, (inverse, sym), 1)
    prob = counts / counts.sum(axis=1, keepdims=True)
    bits, pixels = 0.0, 0
    for a in val:
        f = features(a, mid)
        k, s = context(f).ravel(), f["s"].ravel()
        idx = np.minimum(np.searchsorted(keys_seen, k), len(keys_seen) - 1)
        p = np.where(keys_seen[idx] == k, prob[idx, s], 1.0 / num_centers)
        bits += float(-np.log2(p).sum())
        pixels += a.shape[1] * a.shape[2] * 64
    return bits / pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("checkpoints/shae-v2.pt"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    model, _ = load_model(args.model)
    model.eval()
    train = symbols_per_level(model, load_images(args.data / "train"), 512)
    val = symbols_per_level(model, load_images(args.data / "val"), None)
    print("| level | context | bpp | vs left+top |\n|---|---|---:|---:|")
    for q in args.levels:
        base = cross_entropy_bpp(train[q - 1], val[q - 1], ["left", "top"], model.cfg.num_centers)
        print(f"| {q} | left, top | {base:.4f} | |")
        for keys in EXTRA:
            bpp = cross_entropy_bpp(train[q - 1], val[q - 1], keys, model.cfg.num_centers)
            print(f"| {q} | {', '.join(keys)} | {bpp:.4f} | {100 * (bpp / base - 1):+.1f} % |", flush=True)


if __name__ == "__main__":
    main()
