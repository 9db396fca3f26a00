"""Which context predicts a residual-stage coefficient best (shae-v8r's entropy model)?

    python docs/experiments/residual-contexts/contexts.py 8 384 7 0.18

Arguments: detail photos (the first N of data/detail, 768x512 crops), kept KLT components D,
shae-v8's level index, and the lambda whose high-rate step (imgcodec.train.growth.detail_step)
rounds the coefficients. The basis and the tables are fitted on 48 random 256x256 training
crops (top level's residual, as scripts/build_detail_stage.py does); the script prints the
stage's bits per pixel on the detail photos under three context choices, each with a Laplacian
table (imgcodec.detail_stage's grid) per context and channel:

- act: the block's activity from shae-v8's symbols (what shae-v8r uses);
- energy: floor(log2(1 + sum of |q| of the block's earlier coefficients)), capped at 9;
- both: the pair.
"""
import math
import sys
from pathlib import Path

import numpy as np

from imgcodec.codec import get_codec
from imgcodec.detail_stage import ACTIVITY_BINS, LIMIT, block_activity, laplace_tables, scale_grid, to_blocks
from imgcodec.train.data import load_images, random_crops
from imgcodec.train.growth import detail_step

codec = get_codec("shae-v8")
zero = int(np.abs(codec.model.centers).argmin())
images, channels, level, lam = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
tables = laplace_tables(scale_grid())
grid = np.log(scale_grid())


def base(img: np.ndarray, lv: int) -> tuple[int, np.ndarray, np.ndarray]:
    """shae-v8's payload bits, residual blocks and activity contexts of one image."""
    symbols = codec.symbols_of(img, lv)
    payload, _ = codec._symbols_payload(symbols, lv)
    first = codec.pixels_of(symbols, lv, img.shape[1], img.shape[0])
    blocks = to_blocks((img.astype(np.float32) - first) / 255.0)
    return 8 * len(payload), blocks, block_activity(symbols, zero, blocks.shape[0], blocks.shape[1], 2)


train = random_crops(load_images(Path("data/train")), 48, 256)
detail = [im[:512, :768, :3] for im in load_images(Path("data/detail"))[:images]]
top = np.concatenate([base(c, 9)[1].reshape(-1, 768) for c in train]).astype(np.float64)
_, vectors = np.linalg.eigh(top.T @ top / len(top))
basis = vectors[:, ::-1][:, :channels].T.astype(np.float32)
step = detail_step(lam)


def quantize(blocks: np.ndarray) -> np.ndarray:
    scaled = blocks @ basis.T / step
    return np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.35), -LIMIT, LIMIT).astype(int)


def contexts(q: np.ndarray, activity: np.ndarray) -> dict[str, np.ndarray]:
    earlier = np.cumsum(np.abs(q), axis=-1) - np.abs(q)
    energy = np.minimum(np.floor(np.log2(1 + earlier)).astype(int), 9)
    return {"act": np.broadcast_to(activity[..., None], q.shape), "energy": energy,
            "both": energy * ACTIVITY_BINS + np.minimum(activity, ACTIVITY_BINS - 1)[..., None]}


fitted, tested = [base(c, level) for c in train], [base(im, level) for im in detail]
table_ids = {}
for name, count in (("act", ACTIVITY_BINS), ("energy", 10), ("both", 10 * ACTIVITY_BINS)):
    total, seen = np.zeros((count, channels)), np.zeros((count, channels))
    for _, blocks, activity in fitted:
        q = quantize(blocks)
        ctx = contexts(q, activity)[name]
        for c in range(count):
            chosen = ctx == c
            total[c] += (np.abs(q) * chosen).sum((0, 1))
            seen[c] += chosen.sum((0, 1))
    table_ids[name] = np.abs(grid[:, None, None] - np.log((total + 0.1) / (seen + 1))[None]).argmin(0)
bits = {name: 0.0 for name in table_ids}
pixels, base_bits, psnrs = 0, 0, []
for payload_bits, blocks, activity in tested:
    q = quantize(blocks)
    ctx = contexts(q, activity)
    pixels += blocks.shape[0] * blocks.shape[1] * 256
    base_bits += payload_bits
    for name, ids in table_ids.items():
        bits[name] += float(-np.log2(tables[ids[ctx[name], np.arange(channels)], q + LIMIT] / 65536).sum())
    psnrs.append(10 * math.log10(1 / float(((blocks - (q * step).astype(np.float32) @ basis) ** 2).mean())))
print(f"D {channels} base q{level + 1} lambda {lam}: shae-v8 {base_bits / pixels:.3f} bpp, with the stage "
      f"{np.mean(psnrs):.2f} dB | stage bpp: " + " ".join(f"{k} {v / pixels:.3f}" for k, v in bits.items()))
