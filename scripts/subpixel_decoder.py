"""Rewrite an installed model's decoder.onnx with sub-pixel convolutions, keeping its model id.

    python scripts/subpixel_decoder.py shae-v9 shae-v9-ssim

The graph computes the same function from the same weights (imgcodec.train.subpixel), so the
files that name the model keep decoding with it: its model id stays, and only the file hashes
in model.json and models/manifest.json change. scripts/export_model.py does this for every new
shae-v9 export.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imgcodec.train.export import file_sha256, subpixel_synthesis
from imgcodec.zoo import find_model, models_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="installed model names")
    args = parser.parse_args(argv)
    manifest_path = models_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in args.names:
        info = find_model(name)
        decoder = info.folder / "decoder.onnx"
        if not decoder.exists():
            raise SystemExit(f"{name}: no decoder.onnx (a .shaw decoder is rewritten at export)")
        replaced = subpixel_synthesis(decoder)
        meta_path = info.folder / "model.json"
        meta = json.loads(meta_path.read_text())
        meta["files"]["decoder.onnx"] = file_sha256(decoder)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        manifest["models"][name]["files"] = meta["files"]
        print(f"{name} ({info.model_id}): {replaced} transposed convolutions rewritten", file=sys.stderr)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
