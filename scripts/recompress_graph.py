"""Store an installed model's decoder.onnx (or encoder.onnx) as a .shaw file, keeping its model id.

    python scripts/recompress_graph.py shae-v9 shae-v9-ssim           # bf16 weights: lossless
    python scripts/recompress_graph.py shae-v8 --bits 14              # float32 weights: 14 bits each
    python scripts/recompress_graph.py shae-v8 --graph encoder --bits 12 --data data/val

A decoder whose weights are all bfloat16 (trained in bf16) is stored losslessly (`shaec weights
compress --lossless`): the same floats, the same pixels. Other decoders are quantized finely
(`--bits` per weight on average, calibrated on the latents of the model's samples in samples/,
symbols split into coded high parts and raw low bits) and the script checks, on every sample,
that the new decoder's pixels are those of the old one but for one level in at most
`--max-share` of the values: the tolerance tests/test_samples.py allows float arithmetic on
another CPU. The symbols, and so the files that name the model, do not change: the model id
stays, and only the file hashes in model.json and models/manifest.json change
(scripts/subpixel_decoder.py did the same for a graph rewrite).

An encoder changes no file already written, only the symbols new files get: it is calibrated on
a crop of the first photo in --data and checked by encoding photos of --data at the lowest,
middle and top levels with both encoders: each file's PSNR may move by at most --max-db and its
size by at most --max-rate percent (issue 16's bar for shaec's own networks).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from imgcodec import codec as codec_module
from imgcodec.imageio import load_image
from imgcodec.metrics import psnr_rgb
from imgcodec.runtime import OnnxGraph
from imgcodec.train.export import file_sha256, graph_weights
from imgcodec.weights.codec import WeightCodecConfig, quantizable, sixteen_bit_codes
from imgcodec.weights.tensors import read_tensors
from imgcodec.zoo import ModelInfo, find_model, list_models, models_dir

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


class RecordingGraph:
    """An OnnxGraph that keeps what it is fed (the latents that calibrate the new decoder)."""

    def __init__(self, graph: OnnxGraph) -> None:
        self.graph, self.inputs = graph, []
        self.input_name, self.takes_level = graph.input_name, graph.takes_level

    def __call__(self, tensor: np.ndarray, level: int) -> np.ndarray:
        self.inputs.append((tensor.copy(), level))
        return self.graph(tensor, level)


def decode_with(info: ModelInfo, data: bytes, graph: OnnxGraph | RecordingGraph) -> np.ndarray:
    """A sample's pixels through this decoder graph (a fresh codec: no cached sessions)."""
    codec = codec_module.codec_of(info, threads=None)
    codec.runtime.use_decoder(graph)
    return codec.decode(codec_module.parse(data), max_pixels=0)


def holds_16_bit_floats(onnx_path: Path) -> bool:
    """Whether every tensor the codec would quantize holds 16-bit floats only (stored losslessly)."""
    config = WeightCodecConfig()
    tensors = read_tensors(onnx_path)
    return all(sixteen_bit_codes(a, d) is not None for a, d in tensors.values() if quantizable(a, d, config))


def recompress_decoder(info: ModelInfo, bits: float, max_share: float) -> dict:
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
    lossless = holds_16_bit_floats(onnx_path)
    if lossless:
        data = graph_weights(onnx_path, None, None)
        record = {"coding": "lossless (bfloat16 values)"}
    else:
        tensor, level = recording.inputs[0]  # one latent: sensitivities are relative
        calibration = {recording.input_name: tensor[None]}
        if recording.takes_level:
            calibration["level"] = np.array([level], dtype=np.int64)
        data = graph_weights(onnx_path, bits, calibration)
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


def recompress_encoder(info: ModelInfo, bits: float, data: Path, images: int, max_db: float,
                       max_rate: float) -> dict:
    """Write encoder.shaw beside encoder.onnx after the checks; returns what model.json records."""
    onnx_path = info.folder / "encoder.onnx"
    if not onnx_path.exists():
        raise SystemExit(f"{info.name}: no encoder.onnx")
    photos = sorted(p for p in data.iterdir() if p.suffix.lower() == ".png")[:images]
    if not photos:
        raise SystemExit(f"no .png photo in {data}")
    if holds_16_bit_floats(onnx_path):
        blob, record = graph_weights(onnx_path, None, None), {"coding": "lossless (bfloat16 values)"}
    else:
        crop = load_image(photos[0]).rgb[:128, :128]
        graph = OnnxGraph(onnx_path, None)
        calibration = {graph.input_name: (crop.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)}
        if graph.takes_level:
            calibration["level"] = np.array([len(info.qualities) // 2], dtype=np.int64)
        blob = graph_weights(onnx_path, bits, calibration)
        record = {"coding": "uniform", "bits_per_weight": bits, "allocation": "calibrated on a photo crop"}
    with tempfile.TemporaryDirectory() as tmp:
        zoo = Path(tmp)
        shutil.copytree(info.folder, zoo / info.name)
        (zoo / info.name / "encoder.onnx").unlink()
        (zoo / info.name / "encoder.shaw").write_bytes(blob)
        meta = json.loads((zoo / info.name / "model.json").read_text())
        del meta["files"]["encoder.onnx"]
        meta["files"]["encoder.shaw"] = file_sha256(zoo / info.name / "encoder.shaw")
        (zoo / info.name / "model.json").write_text(json.dumps(meta))
        entry = {**info.manifest_entry, "files": meta["files"]}
        (zoo / "manifest.json").write_text(json.dumps({"models": {info.name: entry}, "default": info.name}))
        (new_info,) = list_models(zoo)
        old_codec, new_codec = codec_module.codec_of(info), codec_module.codec_of(new_info)
        top = len(info.qualities)
        worst_db = worst_rate = 0.0
        for photo in photos:
            image = load_image(photo).rgb
            for quality in sorted({1, (top + 1) // 2, top}):
                old_file, new_file = (c.encode(image, quality).data for c in (old_codec, new_codec))
                old_db, new_db = (psnr_rgb(image, c.decode(codec_module.parse(f), max_pixels=0))
                                  for c, f in ((old_codec, old_file), (new_codec, new_file)))
                rate = 100 * (len(new_file) / len(old_file) - 1)
                worst_db, worst_rate = min(worst_db, new_db - old_db), max(worst_rate, abs(rate))
                print(f"  {photo.name} q{quality}: {new_db - old_db:+.4f} dB, {rate:+.3f} % bytes", file=sys.stderr)
    if worst_db < -max_db or worst_rate > max_rate:
        raise SystemExit(f"{info.name}: the new encoder costs {worst_db:+.4f} dB or {worst_rate:.3f} % of rate; "
                         "nothing changed")
    record |= {"photos": len(photos), "worst_psnr_change_db": round(worst_db, 4),
               "worst_rate_change_percent": round(worst_rate, 3)}
    (info.folder / "encoder.shaw").write_bytes(blob)
    print(f"{info.name}: encoder.onnx {onnx_path.stat().st_size:,} B -> encoder.shaw {len(blob):,} B "
          f"({onnx_path.stat().st_size / len(blob):.2f}x, {record['coding']})", file=sys.stderr)
    onnx_path.unlink()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="installed model names")
    parser.add_argument("--bits", type=float, default=14.0, help="bits per weight for float32 weights")
    parser.add_argument("--max-share", type=float, default=0.001,
                        help="share of a sample's values that may change by one level")
    parser.add_argument("--graph", choices=("decoder", "encoder"), default="decoder")
    parser.add_argument("--data", type=Path, default=Path("data/val"), help="encoder: photos to check on")
    parser.add_argument("--images", type=int, default=4, help="encoder: how many of them")
    parser.add_argument("--max-db", type=float, default=0.05, help="encoder: PSNR a file may lose")
    parser.add_argument("--max-rate", type=float, default=0.5, help="encoder: percent a file's size may change")
    args = parser.parse_args(argv)
    manifest_path = models_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in args.names:
        info = find_model(name)
        if args.graph == "decoder":
            record = recompress_decoder(info, args.bits, args.max_share)
        else:
            record = recompress_encoder(info, args.bits, args.data, args.images, args.max_db, args.max_rate)
        meta_path = info.folder / "model.json"
        meta = json.loads(meta_path.read_text())
        del meta["files"][f"{args.graph}.onnx"]
        meta["files"][f"{args.graph}.shaw"] = file_sha256(info.folder / f"{args.graph}.shaw")
        meta[f"{args.graph}_weights"] = record
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        if "files" in manifest["models"][name]:
            manifest["models"][name]["files"] = meta["files"]
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
