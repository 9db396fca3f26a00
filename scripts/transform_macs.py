"""Multiply-adds of a shae-v9 model's analysis and synthesis transforms at an image size, per layer.

    python scripts/transform_macs.py --size 768 512
    python scripts/transform_macs.py --size 768 512 --model-config '{"half_channels": 64, "quarter_channels": 64}'
    python scripts/transform_macs.py --checkpoint checkpoints/shae-v9-training.pt

Counted by imgcodec.train.complexity (convolutions and GDN; activations and biases are not).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from imgcodec.config import ShaeV9Config
from imgcodec.train.complexity import layer_costs
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.training import load_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="a shae-v9 checkpoint or weights file (its config is used)")
    source.add_argument("--model-config", default="{}", help="JSON fields of ShaeV9Config over the defaults")
    parser.add_argument("--size", type=int, nargs=2, default=[768, 512], metavar=("WIDTH", "HEIGHT"),
                        help="image size, multiples of 64 (default 768 512)")
    args = parser.parse_args(argv)
    width, height = args.size
    if width < 64 or height < 64 or width % 64 or height % 64:
        raise SystemExit("--size: width and height must be positive multiples of 64")
    try:
        if args.checkpoint is not None:
            model, _ = load_model(args.checkpoint)
            if not isinstance(model, ShaeV9):
                raise SystemExit(f"{args.checkpoint}: not a shae-v9 checkpoint")
        else:
            model = ShaeV9(ShaeV9Config.from_dict(json.loads(args.model_config))).eval()
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"model config: {exc}") from exc
    image = torch.zeros(1, 3, height, width)
    latent = torch.zeros(1, model.cfg.transform_channels, height // 16, width // 16)
    for name, transform, x in (("analysis", model.analysis, image), ("synthesis", model.synthesis, latent)):
        costs = layer_costs(transform, x)
        total = sum(c.multiply_adds for c in costs)
        print(f"{name} at {width}x{height}: {total / 1e9:.2f} G multiply-adds")
        for c in costs:
            shapes = f"{'x'.join(map(str, c.input_shape))} -> {'x'.join(map(str, c.output_shape))}"
            print(f"  {c.name:>3} {c.kind:<15} {shapes:<28} {c.multiply_adds / 1e9:6.2f} G  {100 * c.multiply_adds / total:5.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
