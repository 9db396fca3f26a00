"""Store an installed model's decoder.onnx as decoder.shaw, keeping its model id.

    python scripts/recompress_decoder.py shae-v9 shae-v9-ssim           # bf16 weights: lossless
    python scripts/recompress_decoder.py shae-v8 --bits 14              # float32 weights: 14 bits each

A decoder whose weights are all bfloat16 (trained in bf16) is stored losslessly (`shaec weights
compress --lossless`): the same floats, the same pixels. Other decoders are quantized finely
(`--bits` per weight on average, calibrated on the latents of the model's samples in samples/,
symbols split into coded high parts and raw low bits) and the script checks, on every sample,
that the new decoder's pixels are those of the old one but for one level in at most
`--max-share` of the values: the tolerance tests/test_samples.py allows float arithmetic on
another CPU. The symbols, and so the files that name the model, do not change: the model id
stays, and only the file hashes in model.json and models/manifest.json change
(scripts/subpixel_decoder.py did the same for a graph rewrite).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from imgcodec import codec as codec_module
from imgcodec.runtime import OnnxGraph
from imgcodec.train.export import CONTEXT_ALPHABET, file_sha256
from imgcodec.weights.codec import WeightCodecConfig, bf16_codes, quantizable
from imgcodec.weights.model_files import compress_model
from imgcodec.weights.tensors import read_tensors
from imgcodec.zoo import ModelInfo, find_model, models_dir

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


class RecordingGraph:
    """An OnnxGraph that keeps what it is fed (the latents that calibrate the new decoder)."""

    def __init__(self, graph: OnnxGraph) -> None:
        self.graph, self.inputs = graph, []
        self.input_name, self.takes_level = graph.input_name, graph.takes_level

    def __call__(self, tensor: np.ndarray, level: int) -> np.ndarray:
        self.inputs.append((tensor.copy(), level))
        return self.graph(tensor, level)


def decode_with(info: ModelInfo, data: bytes, graph) -> np.ndarray:
    """A sample's pixels through this decoder graph (a fresh codec: no cached sessions)."""
    codec = codec_module.codec_of(info, threads=None)
    codec.runtime.use_decoder(graph)
    return codec.decode(codec_module.parse(data), max_pixels=0)


def is_bf16(onnx_path: Path, config: WeightCodecConfig) -> bool:
    tensors = read_tensors(onnx_path)
    return all(bf16_codes(a) is not None for a, d in tensors.values() if quantizable(a, d, config))


def recompress(info: ModelInfo, bits: float, max_share: float) -> dict:
    """Write decoder.shaw beside decoder.onnx after the checks; returns what model.json records."""
    onnx_path = info.folder / "decoder.onnx"
    if not onnx_path.exists():
        raise SystemExit(f"{info.name}: no decoder.onnx")
    samples = sorted(SAMPLES.glob(f"{info.name}-q*.shae"))
    samples = [p for p in samples if codec_module.parse(p.read_bytes()).model_id.hex() == info.model_id]
    if not samples:
        raise SystemExit(f"{info.name}: no sample in {SAMPLES} to check the new decoder on")
    recording = RecordingGraph(OnnxGraph(onnx_path, None))
    before = [decode_with(info, p.read_bytes(), recording) for p in samples]
    lossless = is_bf16(onnx_path, WeightCodecConfig())
    if lossless:
        data = compress_model(onnx_path, WeightCodecConfig(lossless=True, context_alphabet=CONTEXT_ALPHABET))
        record = {"coding": "lossless (bfloat16 values)"}
    else:
        calibration: dict[str, np.ndarray] = {}
        for tensor, level in recording.inputs[:1]:  # one latent: sensitivities are relative
            calibration[recording.input_name] = tensor[None]
            if recording.takes_level:
                calibration["level"] = np.array([level], dtype=np.int64)
        config = WeightCodecConfig(target_bits_per_weight=bits, deadzone=0.0, context_alphabet=CONTEXT_ALPHABET)
        data = compress_model(onnx_path, config, calibration)
        record = {"coding": "uniform", "bits_per_weight": bits, "allocation": "calibrated on its samples"}
    shaw_path = info.folder / "decoder.shaw"
    shaw_path.write_bytes(data)
    worst = 0.0
    for path, old in zip(samples, before):
        new = decode_with(info, path.read_bytes(), OnnxGraph(shaw_path, None))
        difference = np.abs(new.astype(np.int16) - old)
        share = float(np.mean(difference > 0))
        print(f"  {path.name}: {share:.5f} of the values differ from the old decoder's, by at most "
              f"{int(difference.max())}", file=sys.stderr)
        if (lossless and share) or difference.max() > 1 or share > max_share:
            shaw_path.unlink()
            raise SystemExit(f"{info.name}: the new decoder strays from the old one on {path.name}; "
                             "nothing changed")
        worst = max(worst, share)
    if not lossless:
        record["sample_values_changed"] = round(worst, 6)
    print(f"{info.name}: decoder.onnx {onnx_path.stat().st_size:,} B -> decoder.shaw {len(data):,} B "
          f"({onnx_path.stat().st_size / len(data):.2f}x, {record['coding']})", file=sys.stderr)
    onnx_path.unlink()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="installed model names")
    parser.add_argument("--bits", type=float, default=14.0, help="bits per weight for float32 weights")
    parser.add_argument("--max-share", type=float, default=0.001,
                        help="share of a sample's values that may change by one level")
    args = parser.parse_args(argv)
    manifest_path = models_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in args.names:
        info = find_model(name)
        record = recompress(info, args.bits, args.max_share)
        meta_path = info.folder / "model.json"
        meta = json.loads(meta_path.read_text())
        del meta["files"]["decoder.onnx"]
        meta["files"]["decoder.shaw"] = file_sha256(info.folder / "decoder.shaw")
        meta["decoder_weights"] = record
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        if "files" in manifest["models"][name]:
            manifest["models"][name]["files"] = meta["files"]
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
