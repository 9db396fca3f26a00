"""Are a grown run's new latent channels alive, and do they help?

    python docs/experiments/hold-new-gains/new_channels.py runs/v5-grow64-held/checkpoint.pt --levels 5 9

For each level: per channel, the share of positions whose symbol is not the zero center ("busy"),
summarised for the new channels (from the run's new_channels_from) and the old ones; and the
PSNR of the validation photos decoded as coded, then with every new channel set to the zero
center, which is what the new channels add.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from imgcodec.training import load_images, load_model, pad_to_multiple


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * float(np.log10(1.0 / float(((a - b) ** 2).mean())))


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/val"))
    parser.add_argument("--images", type=int, default=4, help="the first N validation photos")
    parser.add_argument("--levels", type=int, nargs="+", default=None, help="0-based; default all")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, state = load_model(args.checkpoint)
    model.eval()
    first_new = int(state["train_config"]["extra"]["new_channels_from"])
    zero_center = model.quantizer.hard(torch.zeros(1))  # index of the center nearest 0
    images = load_images(args.data)[:args.images]
    print(f"{args.checkpoint}: step {state['step']}, channels {first_new} old + "
          f"{model.cfg.latent_channels - first_new} new, {len(images)} photos")
    print("| level | busy, new (median) | new busy > 5 % | busy, old (median) | PSNR dB | PSNR without the new |")
    print("|---:|---:|---:|---:|---:|---:|")
    for level in args.levels or range(model.cfg.num_levels):
        lv = torch.tensor([level])
        busy, with_new, without_new = [], [], []
        for image in images:
            x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255  # 1,3,H,W
            h, w = x.shape[-2:]
            index = model.quantizer.hard(model.latent(pad_to_multiple(x, 64), lv))  # 1,C,h',w'
            busy.append((index != zero_center).float().mean(dim=(0, 2, 3)))
            values = model.quantizer.centers[index]
            with_new.append(psnr(model.reconstruct(values, lv)[..., :h, :w].clamp(0, 1), x))
            values[:, first_new:] = model.quantizer.centers[zero_center]
            without_new.append(psnr(model.reconstruct(values, lv)[..., :h, :w].clamp(0, 1), x))
        share = torch.stack(busy).mean(dim=0)  # C
        new = share[first_new:]
        print(f"| {level} | {new.median():.3f} | {int((new > 0.05).sum())}/{len(new)} | "
              f"{share[:first_new].median():.3f} | {np.mean(with_new):.2f} | {np.mean(without_new):.2f} |", flush=True)


if __name__ == "__main__":
    main()
