"""What clipping at the outermost latent center costs a shae-v9 checkpoint's first stage on one photo.

    python scripts/first_stage_clipping.py checkpoints/shae-v11-ssim.pt checkpoints/shae-v9-ssim2.pt \
        --image data/val/mate-backgrounds-YellowFlower.png --levels 8 9 10

For each level (1-based): the share of the first stage's gained latent beyond the outermost
centers, and the PSNR of the first stage's image (synthesis alone, no residual stage) from the
latent unclipped, clipped to the centers' range with no rounding, and at the nearest centers (as
coded). Where clipping alone costs dB that rise with the level, a higher level gives a worse image
(docs/training.md, shae-v10's MS-SSIM tune). scripts/center_clipping.py measures the whole model.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imgcodec.metrics import psnr_rgb
from imgcodec.train.training import load_model


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """1,3,H,W in [0,1] -> H,W,3 uint8."""
    return (image.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--crop", type=int, default=512, help="top-left crop (a multiple of 64)")
    parser.add_argument("--levels", type=int, nargs="+", default=[8, 9, 10], help="1-based")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    photo = np.array(Image.open(args.image).convert("RGB"))[:args.crop, :args.crop]
    if photo.shape[0] % 64 or photo.shape[1] % 64:
        raise SystemExit("the crop's sides must be multiples of 64")
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255  # 1,3,H,W
    print("checkpoint | level | beyond % | max |y| | unclipped dB | clipped dB | nearest centers dB")
    for path in args.checkpoints:
        model, _ = load_model(path)
        model.eval().float()
        t = model.cfg.transform_channels
        centers = model.quantizer.centers.detach().sort().values
        low, high = float(centers[0]), float(centers[-1])
        with torch.no_grad():
            analysed = model.analysis(x - 0.5).float()  # 1,T,h,w
            for level in args.levels:
                gain = model.log_gain[level - 1, :t].exp()[None, :, None, None]
                inverse = model.log_inv_gain[level - 1, :t].exp()[None, :, None, None]
                y = analysed * gain
                beyond = float(((y < low) | (y > high)).float().mean()) * 100
                dbs = [psnr_rgb(photo, to_uint8(model.first_stage(v * inverse)))
                       for v in (y, y.clamp(low, high), centers[model.quantizer.symbols(y)])]
                print(f"{path.name} | {level} | {beyond:.3f} | {float(y.abs().max()):.1f} | "
                      + " | ".join(f"{db:.2f}" for db in dbs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
