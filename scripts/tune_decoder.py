"""Fine-tune an installed model's decoder on the symbols its own encoder writes (imgcodec.train.decoder_tuning).

    python scripts/tune_decoder.py cache --model shae-v11 --crops 3000 --out runs/dt/train.npz --seed 1
    python scripts/tune_decoder.py cache --model shae-v11 --images data/detail-half --out runs/dt/held.npz
    python scripts/tune_decoder.py train --checkpoint checkpoints/shae-v11.pt --cache runs/dt/train.npz \
        --held-out runs/dt/held.npz --steps 6000 --out runs/dt/weights.pt

`cache` codes training crops (data/train, never validation or detail photos) with the installed
model's runtime encoder, real rate-distortion rounding included; several `cache` processes with
other seeds fill both cores, and `train` takes them all. `train` logs the held-out examples' PSNR
per level before and during training (CSV beside --out) and writes the checkpoint with the tuned
synthesis, which scripts/export_model.py turns into a model.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from imgcodec.codec import codec_of
from imgcodec.train.data import CropSampler, load_images
from imgcodec.train.decoder_tuning import (CodedExamples, DecoderTuner, batch_tensors, coded_examples, coded_images,
                                          psnr_by_level, with_refine_blocks)
from imgcodec.train.training import load_model, save_weights
from imgcodec.zoo import find_model


def cache(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    codec = codec_of(find_model(args.model), threads=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.images is not None:  # whole photos at the given levels, cropped to multiples of 64
        photos = [im[:im.shape[0] // 64 * 64, :im.shape[1] // 64 * 64] for im in load_images(args.images)]
        # one shape for all (portrait photos turned a quarter): the examples are stacked
        photos = [np.ascontiguousarray(np.rot90(im)) if im.shape[0] > im.shape[1] else im for im in photos]
        levels = np.array(args.levels) - 1
        coded_images(codec, [(photo, levels) for photo in photos]).save(str(args.out))
        return
    sampler = CropSampler(load_images(args.data / "train"), args.size, args.seed, args.flat_crop_activity,
                          colour_augment=args.colour_augment)
    start = time.time()
    parts = []
    for done in range(0, args.crops, 100):
        parts.append(coded_examples(codec, sampler, min(100, args.crops - done), args.levels_per_crop,
                                    seed=args.seed * 1_000_003 + done))
        print(f"{done + 100}/{args.crops} crops, {time.time() - start:.0f} s", flush=True)
    CodedExamples.concatenate(parts).save(str(args.out))


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    examples = CodedExamples.concatenate([CodedExamples.load(str(p)) for p in args.cache])
    held = CodedExamples.load(str(args.held_out))
    model, state = load_model(args.checkpoint)
    if args.refine_blocks:
        model = with_refine_blocks(model, args.refine_blocks)
        state = {**state, "model_config": model.cfg.to_dict()}
    tuner = DecoderTuner(model, args.lr, args.bf16, args.refine_lr)
    rng = np.random.default_rng(args.seed)
    log_path = args.out.with_suffix(".csv")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", newline="") as fh:
        log = csv.writer(fh)
        log.writerow(["step", "seconds", "level", "psnr"])

        def evaluate(step: int, seconds: float) -> None:
            scores = psnr_by_level(tuner, held)
            for level, value in scores.items():
                log.writerow([step, round(seconds, 1), level + 1, round(value, 4)])
            fh.flush()
            print(f"step {step} ({seconds:.0f} s): mean held-out PSNR {np.mean(list(scores.values())):.4f} dB "
                  + " ".join(f"{v:.2f}" for v in scores.values()), flush=True)

        start = time.time()
        evaluate(0, 0.0)
        for step in range(1, args.steps + 1):
            if step == int(args.lr_decay_at * args.steps):
                for group in tuner.optimizer.param_groups:
                    group["lr"] /= 10
            crops, symbols, levels = batch_tensors(examples, rng.integers(0, len(examples.levels), args.batch_size))
            tuner.step(crops, symbols, levels)
            if step % args.eval_every == 0 or step == args.steps:
                evaluate(step, time.time() - start)
                state = {**state, "decoder_tuned": {"from": str(args.checkpoint), "steps": step, "lr": args.lr,
                                                    "batch_size": args.batch_size, "examples": len(examples.levels)}}
                save_weights(args.out, model, state, torch.bfloat16)
    print(json.dumps({"steps": args.steps, "seconds": round(time.time() - start), "log": str(log_path)}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cache", help="code training crops with the installed model's encoder")
    c.add_argument("--model", required=True, help="installed model name or id")
    c.add_argument("--data", type=Path, default=Path("data"))
    c.add_argument("--crops", type=int, default=1000)
    c.add_argument("--images", type=Path, default=None,
                   help="instead of training crops: every photo in this folder, at each of --levels")
    c.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5, 7, 10], help="1-based, with --images")
    c.add_argument("--size", type=int, default=256)
    c.add_argument("--levels-per-crop", type=int, default=2)
    c.add_argument("--flat-crop-activity", type=float, default=12.0)
    c.add_argument("--colour-augment", action="store_true")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("train", help="fine-tune the checkpoint's synthesis on cached examples")
    t.add_argument("--checkpoint", type=Path, required=True, help="the installed model's checkpoint")
    t.add_argument("--cache", type=Path, nargs="+", required=True)
    t.add_argument("--held-out", type=Path, required=True, help="examples for the PSNR log only")
    t.add_argument("--steps", type=int, default=5000)
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--lr", type=float, default=1e-5)
    t.add_argument("--refine-blocks", type=int, default=0,
                   help="grow the synthesis by this many refine blocks at 1/2 resolution (ShaeV9Config.refine_blocks)")
    t.add_argument("--refine-lr", type=float, default=None, help="learning rate of the refine blocks (default: --lr)")
    t.add_argument("--lr-decay-at", type=float, default=0.85, help="lr / 10 from this share of the steps")
    t.add_argument("--bf16", action="store_true", help="bf16 autocast for the synthesis")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-every", type=int, default=500)
    t.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    cache(args) if args.command == "cache" else train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
