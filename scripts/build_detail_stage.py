"""Give an installed shae-v8-layout model a residual stage: writes models/NAME (detail.npz and
model.json; the base model's files are shared) and lists it in models/manifest.json.

    python scripts/build_detail_stage.py --base shae-v8 --name shae-v8r

The stage is fitted on random crops of the training photos (imgcodec.train.detail_fit: no
gradient training); the script prints, per level, the chosen step factor and the PSNR and bits
per pixel on those crops without and with it (real base payloads, the stage's code length).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from imgcodec.codec import Codec, codec_of
from imgcodec.codec_v8r import DETAIL_FILE
from imgcodec.errors import ModelNotFoundError
from imgcodec.evaluation import evaluate
from imgcodec.train.data import load_images, random_crops
from imgcodec.train.detail_fit import fit_detail_stage
from imgcodec.zoo import find_model, models_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="shae-v8", help="installed model of shae-v8's layout (default shae-v8)")
    parser.add_argument("--name", required=True, help="the new model's name")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--crops", type=int, default=64, help="random training crops to fit on (default 64)")
    parser.add_argument("--crop", type=int, default=256, help="their side, a multiple of 16 (default 256)")
    parser.add_argument("--channels", type=int, default=128, help="projections per 16x16 block (default 128)")
    parser.add_argument("--deadzone", type=float, default=0.15, help="rounding dead zone, in steps (default 0.15)")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: the package's models/")
    parser.add_argument("--default", action="store_true", help="make it the default model")
    parser.add_argument("-f", "--force", action="store_true", help="replace models/NAME if it exists")
    args = parser.parse_args(argv)
    directory = args.models_dir or models_dir()
    folder = directory / args.name
    if folder.exists() and not args.force:
        raise SystemExit(f"{folder} exists; use -f to replace it")
    if args.crop < 16 or args.crop % 16 or args.crops < 1:
        raise SystemExit("--crop must be a positive multiple of 16 and --crops positive")
    try:
        base = find_model(args.base, directory)
        codec = codec_of(base)
        if type(codec) is not Codec:
            raise SystemExit(f"{args.base} is not of shae-v8's layout")
        crops = random_crops(load_images(args.data / "train"), args.crops, args.crop)
        stage, fit = fit_detail_stage(codec, crops, args.channels, deadzone=args.deadzone)
    except (ModelNotFoundError, ValueError) as exc:
        raise SystemExit(str(exc)) from exc
    folder.mkdir(parents=True, exist_ok=True)
    digest = stage.save(folder / DETAIL_FILE)
    model_id = hashlib.sha256(bytes.fromhex(base.model_id) + bytes.fromhex(digest)).hexdigest()[:16]
    meta = {"model_id": model_id, "format": "shaec-model-1", "architecture": "shae-v8r", "base": base.name,
            "config": base.meta["config"], "files": {DETAIL_FILE: digest},
            "detail_stage": {"channels": args.channels, "deadzone": args.deadzone, "crops": args.crops,
                             "crop": args.crop, "step_factors": list(fit.factors),
                             "command": "python scripts/build_detail_stage.py " + " ".join(sys.argv[1:] if argv is None else argv)}}
    if "rd_rounding" in base.meta:
        meta["rd_rounding"] = base.meta["rd_rounding"]
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    base_entry = manifest["models"][base.name]
    entry = {"folder": args.name, "model_id": model_id, "base": base.name,
             "default_quality": base_entry.get("default_quality", 5)}
    manifest["models"][args.name] = entry
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    images = load_images(args.data / "val") if (args.data / "val").is_dir() else []
    if images:  # as scripts/export_model.py records it: real files through the installed model
        levels = evaluate(codec_of(find_model(args.name, directory)), images, ms_ssim=True, progress=True)
        entry["validation"] = {"images": len(images), "rounding": "rd", "levels": [r.to_dict() for r in levels]}
    if args.default:
        manifest["default"] = args.name
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{folder}: model {model_id}, a residual stage of {args.channels} projections over {base.name}, "
          f"fitted on {len(crops)} crops of {args.crop}x{args.crop}")
    print("| quality | step factor | base bpp | base PSNR | bpp | PSNR |")
    print("|---:|---:|---:|---:|---:|---:|")
    for level, factor in enumerate(fit.factors):
        print(f"| {level + 1} | {factor if factor else 'off'} | {fit.base_bpp[level]:.3f} | {fit.base_psnr[level]:.2f} "
              f"| {fit.bpp[level]:.3f} | {fit.psnr[level]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
