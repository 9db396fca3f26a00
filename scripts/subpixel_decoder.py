"""Rewrite an installed model's decoder in the layout onnxruntime runs fastest, keeping its model id.

    python scripts/subpixel_decoder.py shae-v9 shae-v9-ssim shae-v9-ssim2 shae-v10

The synthesis's transposed convolutions become sub-pixel convolutions, split by output phase,
and its last layer reads the phases of the one before (imgcodec.train.subpixel:
rewrite_transposed_convolutions, faster_layout): the same function from the same weight values,
the float sums in another order. A decoder.shaw keeps its weights exactly: every rewritten tensor
is a copy (sliced, reordered, tiled, or padded with zeros) of one the file holds, stored again
with that tensor's own quantization step, or losslessly where it was lossless. The script checks
every sample of the model in samples/: the new decoder's pixels may differ from the old one's by
one level in at most --max-share of the values (float rounding; tests/test_samples.py allows
0.5 % on another CPU). The files that name the model keep decoding with it: its model id stays,
and only the file hashes in model.json and models/manifest.json change. scripts/export_model.py
writes every new shae-v9 decoder this way.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from imgcodec import codec as codec_module
from imgcodec.runtime import OnnxGraph
from imgcodec.train.export import fast_layout_shaw, file_sha256, subpixel_synthesis
from imgcodec.zoo import ModelInfo, find_model, models_dir

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def rewrite_shaw(data: bytes) -> tuple[bytes, int]:
    """imgcodec.train.export.fast_layout_shaw, a refused move as the script's one-line error."""
    try:
        return fast_layout_shaw(data)
    except ValueError as exc:
        raise SystemExit(f"{exc}; nothing written") from None


def decode_sample(info: ModelInfo, data: bytes, decoder: Path) -> np.ndarray:
    """A sample's pixels through this decoder file (a fresh codec: no cached sessions)."""
    codec = codec_module.codec_of(info, threads=None)
    codec.runtime.use_decoder(OnnxGraph(decoder, None))
    return codec.decode(codec_module.parse(data), max_pixels=0)


def rewrite(info: ModelInfo, max_share: float) -> str | None:
    """Rewrite the model's decoder after the sample checks; returns its new file name, or None
    where there was nothing to do."""
    shaw, onnx_path = info.folder / "decoder.shaw", info.folder / "decoder.onnx"
    if onnx_path.exists():
        return "decoder.onnx" if subpixel_synthesis(onnx_path) else None
    if not shaw.exists():
        raise SystemExit(f"{info.name}: no decoder.shaw or decoder.onnx")
    samples = [p for p in sorted(SAMPLES.glob(f"{info.name}-q*.shae"))
               if codec_module.parse(p.read_bytes()).model_id.hex() == info.model_id]
    if not samples:
        raise SystemExit(f"{info.name}: no sample in {SAMPLES} to check the new decoder on")
    old_bytes = shaw.read_bytes()
    new_bytes, new_tensors = rewrite_shaw(old_bytes)
    if not new_tensors:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "decoder.shaw"
        candidate.write_bytes(new_bytes)
        for path in samples:
            old = decode_sample(info, path.read_bytes(), shaw)
            new = decode_sample(info, path.read_bytes(), candidate)
            difference = np.abs(new.astype(np.int16) - old)
            share = float(np.mean(difference > 0))
            print(f"  {path.name}: {share:.5f} of the values differ from the old decoder's, by at most "
                  f"{int(difference.max())}", file=sys.stderr)
            if difference.max() > 1 or share > max_share:
                raise SystemExit(f"{info.name}: the new decoder strays from the old one on {path.name}; "
                                 "nothing changed")
    shaw.write_bytes(new_bytes)
    print(f"{info.name} ({info.model_id}): decoder.shaw {len(old_bytes):,} B -> {len(new_bytes):,} B, "
          f"{new_tensors} tensors rewritten", file=sys.stderr)
    return "decoder.shaw"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="installed model names")
    parser.add_argument("--max-share", type=float, default=0.001,
                        help="largest share of a sample's values that may move by one level (default 0.001)")
    args = parser.parse_args(argv)
    manifest_path = models_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in args.names:
        info = find_model(name)
        changed = rewrite(info, args.max_share)
        if changed is None:
            print(f"{name}: its decoder is in the fast layout already", file=sys.stderr)
            continue
        meta_path = info.folder / "model.json"
        meta = json.loads(meta_path.read_text())
        meta["files"][changed] = file_sha256(info.folder / changed)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        manifest["models"][name]["files"] = meta["files"]
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
