"""Export a training checkpoint to models/NAME, evaluate it through real .shae files, and
record it in models/manifest.json.

    python scripts/export_model.py runs/base/checkpoint.pt --name shae-v1 \\
        --train-command "python scripts/train.py --run-dir runs/base --steps 15000"
    python scripts/export_model.py runs/v8-ssim/checkpoint.pt --name shae-v8-ssim --tune ssim ...

Evaluation runs every quality level over data/val with the same code path as `shaec encode` /
`shaec decode` (ONNX runtime, range coder, container): real bpp from file bytes, the prior's
estimate, PSNR and MS-SSIM (RGB), and JPEG (Pillow, 4:2:0) interpolated at the same bpp.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from imgcodec.codec import codec_of
from imgcodec.train.data import load_images
from imgcodec.train.export import export_model, export_shae_v9, calibration_crops
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.rounding_tuning import tune, write_tuning
from imgcodec.train.validation import validation_entry
from imgcodec.train.training import load_model
from imgcodec.zoo import TUNES, find_model, models_dir


def steps_per_second(train_log: Path) -> float | None:
    """Median training speed from the log's wall-clock column (robust to pauses between runs)."""
    if not train_log.exists():
        return None
    with open(train_log) as fh:
        rows = [(int(r["step"]), float(r["wall"])) for r in csv.DictReader(fh)]
    speeds = [(s1 - s0) / (w1 - w0) for (s0, w0), (s1, w1) in zip(rows, rows[1:]) if w1 > w0 and s1 > s0]
    return round(float(np.median(speeds)), 3) if speeds else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--name", required=True, help="model name, e.g. shae-v9")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--train-command", default="")
    parser.add_argument("--default-quality", type=int, default=None,
                        help="default -q; by default the level closest to 0.4 bpp on validation")
    parser.add_argument("--tune", choices=TUNES, default="psnr",
                        help="the metric the model was trained for: ssim exports a fine-tune of the current "
                             "default model (`shaec encode --tune ssim`), which stays the default")
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--tune-rounding", action="store_true",
                        help="before evaluating, tune the encoder's rate-distortion rounding on training crops "
                             "(imgcodec.train.rounding_tuning, as scripts/tune_rounding.py --write)")
    parser.add_argument("--weights-bits", type=float, default=None,
                        help="shae-v9: store the graphs as .shaw files at this many bits per weight on average, "
                             "calibrated on crops of training photos (docs/weights.md)")
    parser.add_argument("--integer-steps", type=int, default=None, metavar="N",
                        help="shae-v9: coarser weights for the entropy model's integer networks, steps of at most "
                             "1/N of each layer's RMS (a smaller hyperprior.npz for a little rate; docs/weights.md)")
    parser.add_argument("--save-checkpoint", type=Path, default=None,
                        help="also write the exported PyTorch model here (weights only), to continue from with --init")
    args = parser.parse_args(argv)
    if args.integer_steps is not None and args.integer_steps < 1:
        parser.error("--integer-steps must be at least 1")

    model, state = load_model(args.checkpoint)
    if args.save_checkpoint:
        args.save_checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "model_config": model.cfg.to_dict(), "step": state["step"],
                    "train_config": state["train_config"], "cpu_seconds": state.get("cpu_seconds", 0.0),
                    "exported_from": str(args.checkpoint)}, args.save_checkpoint)
    out_dir = models_dir()
    folder = out_dir / args.name
    if folder.exists():
        shutil.rmtree(folder)
    train_log = args.checkpoint.parent / "train_log.csv"
    extra = {"trained_steps": state["step"], "train_config": state["train_config"],
             "cpu_hours": round(state.get("cpu_seconds", 0.0) / 3600, 3),
             "steps_per_second": steps_per_second(train_log)}
    for key in ("init", "total_steps", "total_cpu_hours"):  # a run continued from another (--init)
        if key in state:
            extra[key] = state[key]
    if isinstance(model, ShaeV9):
        crops = None if args.weights_bits is None else calibration_crops(args.data / "train")
        model_id = export_shae_v9(model, folder, extra, args.weights_bits, crops, args.integer_steps)
    elif args.weights_bits is not None or args.integer_steps is not None:
        raise SystemExit("--weights-bits, --integer-steps: only shae-v9 models ship compressed weights")
    else:
        model_id = export_model(model, folder, extra)
    logs = Path("docs/training-logs") / args.name  # logs are records, not package data
    for log in ("train_log.csv", "val_log.csv"):
        if (args.checkpoint.parent / log).exists():
            logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(args.checkpoint.parent / log, logs / log)

    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    entry = {"folder": args.name, "model_id": model_id, "training_command": args.train_command,
             "trained_steps": state["step"], "cpu_hours": extra["cpu_hours"],
             "steps_per_second": extra["steps_per_second"],
             **{k: v for k, v in extra.items() if k in ("init", "total_steps", "total_cpu_hours")},
             "files": json.loads((folder / "model.json").read_text())["files"]}
    if args.tune == "psnr":
        manifest["default"] = args.name
    else:
        entry.update(tune=args.tune, tuned_from=manifest["default"])
    manifest["models"][args.name] = entry
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    if args.tune_rounding:
        tuning = tune(codec_of(find_model(args.name)), args.data / "train",
                      metric="ms-ssim" if args.tune == "ssim" else "psnr")
        write_tuning(find_model(args.name), tuning, "python scripts/export_model.py ... --tune-rounding "
                     "(imgcodec.train.rounding_tuning.tune defaults)")
        print(tuning.table(), file=sys.stderr)
    if not args.no_eval:
        images = load_images(args.data / "val")
        entry["validation"] = validation_entry(codec_of(find_model(args.name)), images)
        levels = entry["validation"]["levels"]
        default = args.default_quality or min(levels, key=lambda r: abs(r["bpp"] - 0.4))["quality"]
        entry["default_quality"] = default
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "validation.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(levels[0]))
            writer.writeheader()
            writer.writerows(levels)
        for row in levels:
            print(row)
    print(f"exported {args.name} ({model_id}) to {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
