"""Diagnostic: does one quality level gain from weights of its own?

Fine-tunes shae-v2 for a fixed number of steps at a constant learning rate, either on the top
level only ("top") or on all levels as in training ("all", the control), then measures levels 6
and 8 on the validation photos through the real range coder. The gap between the two runs is
what a level could gain from specialised weights, without the cost of separate models.

    python docs/experiments/level-ft/level_ft.py top 1200
    python docs/experiments/level-ft/level_ft.py all 1200
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from imgcodec.training import CropSampler, load_images, load_model, validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("top", "all"))
    parser.add_argument("steps", type=int)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/shae-v2.pt"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model, _ = load_model(args.checkpoint)
    model.train()
    lambdas = torch.tensor(model.cfg.lambdas)
    top = model.cfg.num_levels - 1
    fast = list(model.prior.parameters()) + model.level_parameters()  # 10x faster, as train.py
    fast_ids = {id(p) for p in fast}
    optimizer = torch.optim.Adam([{"params": [p for p in model.parameters() if id(p) not in fast_ids]},
                                  {"params": fast, "lr": 10 * args.lr}], lr=args.lr)
    sampler = CropSampler(load_images(args.data / "train"), 128, 1)
    started = time.time()
    for step in range(args.steps):
        x = sampler.batch(8)  # N,3,128,128
        level = torch.full((8,), top) if args.mode == "top" else torch.randint(0, top + 1, (8,))
        result = model(x, level, 6.0)
        mse = ((result.x_hat - x) ** 2).mean(dim=(1, 2, 3))
        loss = (lambdas[level] * 255 ** 2 * mse + result.bits / (128 * 128)).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if step % 200 == 0:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - started:.0f} s)", flush=True)
    for r in validate(model, load_images(args.data / "val"), [top - 2, top]):
        print(f"{args.mode}: level {r.level + 1}: {r.bpp_real:.4f} bpp, {r.psnr:.2f} dB")


if __name__ == "__main__":
    main()
