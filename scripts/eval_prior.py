"""How much the context prior saves: real payload rate against a context-free baseline.

    python scripts/eval_prior.py                        # data/val, every level of the default model
    python scripts/eval_prior.py --max-images 3 --max-train-images 4 --json prior.json
    python scripts/eval_prior.py --data /path/to/data   # uses DATA/val and DATA/train

For every quality level of the model, mean over the validation images (bits per pixel of the
original image, before padding to a multiple of 8):

* real bpp: 8 * len(payload) / pixels, the payload of ``imgcodec.coder.encode_symbols`` on
  ``Codec.symbols_of(rgb, level)`` (the latent segment only; no container header);
* context bpp: the context prior's cross-entropy, ``PriorTables.cross_entropy_bits``;
* histogram bpp: cross-entropy under a context-free model, one histogram of symbols per level
  and channel, counted on the training split (the central ``--train-crop`` square of every
  training photo, to bound the time) with add-one (Laplace) smoothing;
* empirical-entropy bpp: per image and channel, the entropy of that image's own symbol
  histogram; an optimistic bound that ignores the cost of sending the histogram.

"saving" is (histogram - context) / histogram. real/context should stay within 3% of 1: the
range coder's overhead over the ideal code length (32-bit words, final flush; this needs
images of a realistic size - for tiny images the fixed few bytes dominate).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RATIO_TOLERANCE = 0.03


def central_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size square (or less where the image is smaller), sides multiples of 8."""
    height, width = image.shape[:2]
    ch, cw = min(size, height), min(size, width)
    ch, cw = max(8, ch - ch % 8), max(8, cw - cw % 8)
    top, left = max(0, (height - ch) // 2), max(0, (width - cw) // 2)
    return np.ascontiguousarray(image[top:top + ch, left:left + cw])


def channel_counts(symbols: np.ndarray, num_centers: int) -> np.ndarray:
    """symbols C,h,w -> counts C,L of each symbol in each channel."""
    channels = symbols.shape[0]
    flat = (symbols.reshape(channels, -1) + np.arange(channels)[:, None] * num_centers).ravel()
    return np.bincount(flat, minlength=channels * num_centers).reshape(channels, num_centers)


def histogram_bits(symbols: np.ndarray, log2_probs: np.ndarray) -> float:
    """Code length of symbols C,h,w under per-channel probabilities (log2, C,L)."""
    channels = symbols.shape[0]
    return float(-log2_probs[np.arange(channels)[:, None, None], symbols].sum())


def empirical_entropy_bits(symbols: np.ndarray, num_centers: int) -> float:
    """Sum over channels of N * H(channel's own histogram): the two-pass, free-histogram bound."""
    counts = channel_counts(symbols, num_centers).astype(np.float64)  # C,L
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log2(counts / totals), 0.0)
    return float(-terms.sum())


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ["level", "real bpp", "context bpp", "histogram bpp", "empirical-entropy bpp",
            "context saving vs histogram %", "real/context", "within 3%"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        lines.append(f"| {r['level']} | {r['real_bpp']:.4f} | {r['context_bpp']:.4f} | {r['histogram_bpp']:.4f} | "
                     f"{r['empirical_entropy_bpp']:.4f} | {r['saving_pct']:.1f} | {r['real_over_context']:.4f} | "
                     f"{'yes' if r['within_tolerance'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "data",
                        help="folder with val/ and train/ (default: the repository's data/)")
    parser.add_argument("--model", default=None, help="model name or id (default: the default model)")
    parser.add_argument("--max-images", type=int, default=None, help="use only the first N validation images")
    parser.add_argument("--max-train-images", type=int, default=None,
                        help="histograms from only the first N training images")
    parser.add_argument("--train-crop", type=int, default=512,
                        help="side of the central crop of each training photo (default 512)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from imgcodec.codec import Codec
    from imgcodec.coder import encode_symbols
    from imgcodec.train.data import load_images
    from imgcodec.zoo import find_model

    info = find_model(args.model)
    if info.architecture != "shae-v8":
        raise SystemExit(f"{info.name} is a {info.architecture} model; this script measures shae-v8's layout "
                         "(a context prior over its latent): pass --model shae-v8")
    codec = Codec(info)  # our own instance: its analysis gets memoized below
    prior = codec.model.prior
    levels = codec.qualities
    num_centers, channels = prior.num_centers, prior.num_channels

    val = load_images(args.data / "val")[:args.max_images]
    train = load_images(args.data / "train")[:args.max_train_images]

    # (c) context-free baseline: per level and channel, symbol counts on training crops.
    hist = np.ones((len(levels), channels, num_centers), dtype=np.int64)  # add-one smoothing
    train_pixels = 0
    for rgb in tqdm(train, desc="train histograms", file=sys.stderr, disable=None):
        crop = central_crop(rgb, args.train_crop)
        train_pixels += crop.shape[0] * crop.shape[1]
        for q in levels:
            hist[q - 1] += channel_counts(codec.symbols_of(crop, q - 1), num_centers)
    log2_probs = np.log2(hist / hist.sum(axis=-1, keepdims=True))  # levels,C,L

    per_level: dict[int, list[tuple[float, float, float, float]]] = {q: [] for q in levels}
    for rgb in tqdm(val, desc="validation", file=sys.stderr, disable=None):
        pixels = rgb.shape[0] * rgb.shape[1]
        for q in levels:
            symbols = codec.symbols_of(rgb, q - 1)  # C,h,w
            payload = encode_symbols(symbols, prior, q - 1)
            per_level[q].append((8 * len(payload) / pixels,
                                 prior.cross_entropy_bits(symbols, q - 1) / pixels,
                                 histogram_bits(symbols, log2_probs[q - 1]) / pixels,
                                 empirical_entropy_bits(symbols, num_centers) / pixels))

    rows = []
    for q in levels:
        real, ctx, hst, emp = (float(v) for v in np.mean(per_level[q], axis=0))
        ratio = real / ctx if ctx > 0 else float("inf")
        rows.append({"level": q, "real_bpp": real, "context_bpp": ctx, "histogram_bpp": hst,
                     "empirical_entropy_bpp": emp, "saving_pct": 100 * (hst - ctx) / hst if hst > 0 else 0.0,
                     "real_over_context": ratio, "within_tolerance": abs(ratio - 1) <= RATIO_TOLERANCE})

    print(markdown(rows))
    print()
    val_pixels = sum(im.shape[0] * im.shape[1] for im in val)
    print(f"- model {info.name} ({info.model_id}); {len(val)} validation images ({val_pixels / 1e6:.2f} MPix) "
          f"from {args.data / 'val'}; bpp = mean over images")
    print(f"- histogram baseline: {len(train)} training images from {args.data / 'train'}, central crops "
          f"<= {args.train_crop}x{args.train_crop} ({train_pixels / 1e6:.2f} MPix), add-one smoothing")
    bad = [r["level"] for r in rows if not r["within_tolerance"]]
    print(f"- real/context within {100 * RATIO_TOLERANCE:.0f}% at "
          + ("every level" if not bad else f"all levels except {bad}"))
    if args.json:
        meta = {"model": info.name, "model_id": info.model_id, "val_dir": str(args.data / "val"),
                "val_images": len(val), "val_pixels": val_pixels, "train_dir": str(args.data / "train"),
                "train_images": len(train), "train_crop": args.train_crop, "train_pixels": train_pixels,
                "ratio_tolerance": RATIO_TOLERANCE}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
