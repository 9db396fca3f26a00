"""Tune the encoder's rate-distortion rounding (imgcodec.rounding) per quality level, on training photos.

See imgcodec/train/rounding_tuning.py for the method. With --write the chosen taus go into
models/NAME/model.json ("rd_rounding"), which `shaec encode` reads, and the model's validation
table in manifest.json (`shaec models`) is measured again; the model id (the weights' hash) does
not change, and files decode exactly as before.

    python scripts/tune_rounding.py --model shae-v8 --write
    python scripts/tune_rounding.py --model shae-v11 --write  # weighs its channels by their costs
    python scripts/tune_rounding.py --model shae-v11-ssim --write  # scored in MS-SSIM, its metric

Validation photos are never used here, so the validation table stays an honest test.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imgcodec.codec import codec_of
from imgcodec.train.rounding_tuning import DEFAULT_TAUS, METRICS, tune, write_tuning
from imgcodec.train.data import load_images
from imgcodec.train.validation import validation_entry
from imgcodec.zoo import find_model, models_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or id (default: the default model)")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--crops", type=int, default=16, help="training photos to crop")
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels")
    parser.add_argument("--taus", type=float, nargs="+", default=list(DEFAULT_TAUS))
    parser.add_argument("--threads", type=int, default=None, help="ONNX threads (default: onnxruntime's)")
    parser.add_argument("--metric", choices=sorted(METRICS), default=None,
                        help="quality the savings are measured at (default: ms-ssim for a model tuned "
                             "for MS-SSIM, else psnr)")
    parser.add_argument("--equal-channels", action="store_true",
                        help="weigh every latent channel by its squared inverse gain alone, as before 0.11.1 "
                             "(default for a shae-v9 model scored in PSNR: also by what its change costs the image)")
    parser.add_argument("--write", action="store_true", help="store the chosen taus in models/NAME/model.json")
    args = parser.parse_args(argv)
    if any(t <= 0 for t in args.taus):
        parser.error("--taus must be positive (tau = 0, nearest rounding, is always measured)")

    info = find_model(args.model)
    metric = args.metric or ("ms-ssim" if info.tune == "ssim" else "psnr")
    tuning = tune(codec_of(info, threads=args.threads), args.data / "train", args.crops, args.size, tuple(args.taus),
                  metric=metric, weigh_channels=not args.equal_channels)
    print(f"{info.name} ({info.model_id}): {tuning.crops} training crops of up to {args.size}x{args.size}")
    print(tuning.table())
    if args.write:
        command = "python scripts/tune_rounding.py " + " ".join(argv if argv is not None else sys.argv[1:])
        print(f"wrote rd_rounding to {write_tuning(info, tuning, command)}", file=sys.stderr)
        refresh_validation(info.name, args.data / "val", args.threads)
    return 0


def refresh_validation(name: str, val_dir: Path, threads: int | None) -> None:
    """Measure the validation table of the manifest's entry again with the new rounding (its
    every point moves), where the entry has one."""
    manifest_path = models_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["models"].get(name)
    if entry is None or "validation" not in entry:
        return
    entry["validation"] = validation_entry(codec_of(find_model(name), threads=threads), load_images(val_dir))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"measured {name}'s validation table again into {manifest_path}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
