"""What storing an installed model's ONNX weights as .shaw costs, per level, in rate and PSNR.

    python scripts/weights_dogfood.py --data data/val --bits 8 6 5 4 --out docs/bench/weights-dogfood.md

The encoder and decoder graphs are split from their weights (imgcodec.weights.onnx_weights),
the weights compressed with `shaec weights`' no-data mode at each bits-per-weight target, and
the sessions rebuilt from the .shaw bytes. The prior's integer tables are untouched, so every
file still decodes; what changes is the encoder's latent (rate) and the decoder's pixels (PSNR).
The bar for shipping compressed models: at most -0.05 dB and +-0.5 % bits at every level, and
models/ at least 8x smaller.

A shae-v9 training checkpoint is measured as it would ship instead (`--checkpoint`): exported
once with float32 graphs and once per --bits value with .shaw graphs (scripts/export_model.py
--weights-bits: calibrated allocation), each coded through real files at --levels:

    python scripts/weights_dogfood.py --checkpoint checkpoints/shae-v9-training.pt --images 4 --levels 1 6 10 \
        --bits 8 6 --integer-steps 0 16

--bits 32 keeps float32 graphs; --integer-steps N gives the entropy model's integer networks
steps of at most 1/N of each layer's RMS (0: their full 16-bit precision); a row per pair.

Two allocations of the bits between tensors: "rms" (the no-data mode: one step relative to
each tensor's RMS) and "sensitivity" (steps from imgcodec.weights.sensitivity, calibrated on
crops of --calibration photos, never the evaluation photos: the decoder's pixel error relative
to each crop's coding error, the encoder's latent error in units of the gained latent).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from imgcodec.bench.report import publish
from imgcodec.codec import Codec
from imgcodec.evaluation import evaluate
from imgcodec.weights import onnx_weights, sensitivity
from imgcodec.weights.codec import WeightCodecConfig, choose_scale, compress_tensors, quantizable, step_of, unit_steps
from imgcodec.weights.container import pack
from imgcodec.weights.tensors import dtype_name
from imgcodec.zoo import ModelInfo, find_model, folder_model
from imgcodec.codec import codec_of
from imgcodec.train.export import export_shae_v9, calibration_crops
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.training import load_model


class _Session:
    """runtime.OnnxGraph's interface over a session rebuilt from .shaw weights."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name  # type: ignore[attr-defined]

    def __call__(self, tensor: np.ndarray, level: int) -> np.ndarray:
        feed = {self.input_name: tensor[None], "level": np.array([level], dtype=np.int64)}
        return self.session.run(None, feed)[0][0]  # type: ignore[attr-defined]


CALIBRATION_CROP = 192
CALIBRATION_LEVELS = (0, 3, 6, 9)


def graph_sensitivities(codec: Codec, part: str, graph: bytes, tensors: dict[str, np.ndarray],
                        crops: list[np.ndarray]) -> dict[str, float]:
    """Sensitivity of each quantizable tensor of the encoder or decoder graph (module docstring)."""
    model = codec.model
    feeds, weights = [], []  # graph input (1,C,H,W), per-sample error weight
    for crop in crops:
        for level in CALIBRATION_LEVELS:
            if part == "encoder":
                feeds.append((crop.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, level))
                weights.append(np.square(model.gains[level])[None, :, None, None])  # latent error in center units
            else:
                symbols = codec.symbols_of(crop, level)
                latent = model.centers[symbols] * model.inverse_gains[level][:, None, None]
                feeds.append((latent[None].astype(np.float32), level))
                decoded = codec.pixels_of(symbols, level, crop.shape[1], crop.shape[0])
                coding_error = np.mean(np.square(decoded.astype(np.float64) - crop)) / 255.0 ** 2
                weights.append(np.array(1.0 / coding_error))  # pixel error relative to the coding error
    names = [n for n, a in tensors.items() if quantizable(a, dtype_name(a.dtype), WeightCodecConfig())]

    def run(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        graph_session = onnx_weights.session_with(graph, arrays, options)
        name = graph_session.get_inputs()[0].name
        return [graph_session.run(None, {name: x, "level": np.array([level], dtype=np.int64)})[0] for x, level in feeds]

    def error(outputs: list[np.ndarray], reference: list[np.ndarray]) -> float:
        return float(np.mean([np.mean(np.square(o.astype(np.float64) - r) * w)
                              for o, r, w in zip(outputs, reference, weights)]))

    return sensitivity.measure(tensors, names, run, error)


PARTS = ("encoder", "decoder")
OLD_FILE_LEVELS = (1, 5, 10)
FLOAT_BITS = 32.0  # --bits 32: float32 graphs (--checkpoint)


def model_sensitivities(model: str | None, crops: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """part -> tensor name -> sensitivity, for the encoder and decoder graphs."""
    codec = Codec(find_model(model))
    result = {}
    for part in PARTS:
        graph, tensors = onnx_weights.split(getattr(codec.model, f"{part}_path"))
        result[part] = graph_sensitivities(codec, part, graph, tensors, crops)
    return result


def compressed_codec(model: str | None, bits: float, sensitivities: dict[str, dict[str, float]] | None,
                     deadzone: float = WeightCodecConfig().deadzone) -> tuple[Codec, int, int]:
    """(a codec whose transforms run from .shaw weights, .shaw bytes, ONNX bytes they replace);
    bits allocated by the sensitivities (model_sensitivities), or by RMS for None."""
    codec = Codec(find_model(model))
    shaw_bytes = onnx_bytes = 0
    for part in PARTS:
        path = getattr(codec.model, f"{part}_path")
        graph, tensors = onnx_weights.split(path)
        records = compress_tensors({k: (v, dtype_name(v.dtype)) for k, v in tensors.items()},
                                   WeightCodecConfig(target_bits_per_weight=bits, deadzone=deadzone),
                                   None if sensitivities is None else sensitivities[part])
        shaw = pack(records)
        setattr(codec.runtime, f"_{part}", _Session(onnx_weights.session(graph, shaw)))
        shaw_bytes += len(shaw) + len(graph)
        onnx_bytes += path.stat().st_size
    return codec, shaw_bytes, onnx_bytes


def shae_v9_table(args: argparse.Namespace, images: list[np.ndarray]) -> list[str]:
    """Rate and PSNR changes of the checkpoint with .shaw graphs against float32 graphs."""
    model, _ = load_model(args.checkpoint)
    if not isinstance(model, ShaeV9):
        raise SystemExit(f"{args.checkpoint}: --checkpoint takes a shae-v9 checkpoint")
    crops = calibration_crops(args.calibration)

    def exported(folder: Path, bits: float | None, steps: int | None) -> ModelInfo:
        export_shae_v9(model, folder, None, bits, None if bits is None else crops, steps)
        return folder_model(folder)

    with tempfile.TemporaryDirectory() as scratch:
        reference_info = exported(Path(scratch) / "float32", None, None)
        reference = evaluate(codec_of(reference_info), images, args.levels)
        reference_bytes = sum((reference_info.folder / name).stat().st_size for name in reference_info.meta["files"])
        lines = [f"{args.checkpoint} on {len(images)} photos of {args.data}, levels "
                 f"{', '.join(str(r.quality) for r in reference)}: exported as it is (float32 graphs, 16-bit "
                 f"integer networks) {reference_bytes} bytes in all "
                 f"({', '.join(f'{r.bpp:.4f} bpp / {r.psnr:.2f} dB' for r in reference)}), "
                 f"of which hyperprior.npz {(reference_info.folder / 'hyperprior.npz').stat().st_size} bytes; "
                 "change with compressed weights:",
                 "", "| graphs bits/weight | integer steps per RMS | graphs bytes | hyperprior.npz bytes | model bytes | "
                 "smaller by | worst rate change % | worst PSNR change dB | mean PSNR change dB |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for bits in args.bits:
            for steps in args.integer_steps:
                graph_bits = None if bits == FLOAT_BITS else bits
                if graph_bits is None and not steps:
                    continue  # the reference
                info = exported(Path(scratch) / f"bits{bits:g}-steps{steps}", graph_bits, steps or None)
                results = evaluate(codec_of(info), images, args.levels)
                rate = [100 * (r.bpp / ref.bpp - 1) for r, ref in zip(results, reference)]
                psnr = [r.psnr - ref.psnr for r, ref in zip(results, reference)]
                sizes = {name: (info.folder / name).stat().st_size for name in info.meta["files"]}
                model_bytes = sum(sizes.values())
                graph_bytes = sum(v for k, v in sizes.items() if k.endswith((".shaw", ".onnx")))
                lines.append(f"| {'float32' if graph_bits is None else f'{bits:g}'} | {steps or 'full (16 bits)'} | "
                             f"{graph_bytes} | {sizes['hyperprior.npz']} | {model_bytes} | "
                             f"{reference_bytes / model_bytes:.2f}x | {max(rate, key=abs):+.2f} | {min(psnr):+.3f} | "
                             f"{np.mean(psnr):+.3f} |")
                print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/val"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--bits", type=float, nargs="+", default=[8.0, 6.0, 5.0, 4.0])
    parser.add_argument("--rms-bits", type=float, nargs="*", default=None,
                        help="bits per weight for the rms allocation [default: --bits]")
    parser.add_argument("--allocations", nargs="+", choices=("rms", "sensitivity"), default=["rms", "sensitivity"])
    parser.add_argument("--calibration", type=Path, default=Path("data/train"),
                        help="photos whose crops calibrate the sensitivities (not the evaluation photos)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--deadzone", type=float, default=WeightCodecConfig().deadzone,
                        help="the weight codec's dead zone, in steps beyond half a step (default: the codec's); "
                             "--checkpoint exports always use 0 (imgcodec.train.export.compress_graph)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a shae-v9 training checkpoint, measured as exported (module docstring)")
    parser.add_argument("--integer-steps", type=int, nargs="+", default=[0],
                        help="--checkpoint: the integer networks' steps per RMS, 0 for full precision (module docstring)")
    parser.add_argument("--images", type=int, default=None, help="the first N photos of --data")
    parser.add_argument("--levels", type=int, nargs="*", default=None, help="1-based; default all")
    args = parser.parse_args(argv)
    if any(steps < 0 for steps in args.integer_steps):
        parser.error("--integer-steps takes 0 (full precision) or a positive number of steps per RMS")
    if args.checkpoint is not None:
        paths = sorted(args.data.glob("*.png"))[:args.images]
        lines = shae_v9_table(args, [np.asarray(Image.open(p).convert("RGB")) for p in paths])
        publish("\n".join(lines), args.out,
                f"python scripts/weights_dogfood.py --checkpoint {args.checkpoint} --data {args.data}"
                + (f" --images {args.images}" if args.images else "")
                + (f" --levels {' '.join(map(str, args.levels))}" if args.levels else "")
                + f" --bits {' '.join(f'{b:g}' for b in args.bits)}"
                + f" --integer-steps {' '.join(map(str, args.integer_steps))} --calibration {args.calibration}"
                + (f" --out {args.out}" if args.out else ""))
        return 0

    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(args.data.glob("*.png"))]
    reference_codec = Codec(find_model(args.model))
    reference = evaluate(reference_codec, images)
    measured = model_sensitivities(args.model, calibration_crops(args.calibration, CALIBRATION_CROP, seed=0)) \
        if "sensitivity" in args.allocations else None
    # Files the float32 model wrote, and its decodes: what a compressed decoder does to old files.
    old_files = [(data, reference_codec.decode_bytes(data)) for data in
                 (reference_codec.encode(rgb, q).data for rgb in images for q in OLD_FILE_LEVELS)]
    lines = [f"{reference_codec.info.name} on {len(images)} photos of {args.data}: change against the "
             "float32 ONNX weights, worst level and mean over the levels; old files: the float32 model's "
             f"files at levels {', '.join(map(str, OLD_FILE_LEVELS))} decoded by the compressed decoder "
             "(tests/test_samples.py allows 0.5 % of values one level off, for float rounding).", "",
             "| allocation | bits/weight | weights bytes (graphs + .shaw) | smaller by | worst rate change % "
             "| mean rate change % | worst PSNR change dB | mean PSNR change dB | old files: values changed % "
             "| old files: largest change |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for allocation in args.allocations:
        for bits in args.bits if allocation == "sensitivity" or not args.rms_bits else args.rms_bits:
            codec, shaw_bytes, onnx_bytes = compressed_codec(args.model, bits,
                                                             measured if allocation == "sensitivity" else None,
                                                             args.deadzone)
            results = evaluate(codec, images)
            rate = [100 * (r.bpp / ref.bpp - 1) for r, ref in zip(results, reference)]
            psnr = [r.psnr - ref.psnr for r, ref in zip(results, reference)]
            changes = [np.abs(codec.decode_bytes(data).astype(np.int16) - before) for data, before in old_files]
            changed = 100 * sum(int(np.count_nonzero(c)) for c in changes) / sum(c.size for c in changes)
            lines.append(f"| {allocation} | {bits:g} | {shaw_bytes} | {onnx_bytes / shaw_bytes:.1f}x | "
                         f"{max(rate, key=abs):+.2f} | {np.mean(rate):+.2f} | {min(psnr):+.3f} | {np.mean(psnr):+.3f} | "
                         f"{changed:.2f} | {max(int(c.max()) for c in changes)} |")
            print(lines[-1], flush=True)
    if measured is not None:
        lines += ["", "Sensitivities (output error per unit of noise variance per weight; the decoder's relative "
                  "to each crop's coding error, the encoder's in gained-latent units) and the steps they give, "
                  "as a multiple of the tensor's RMS, at the first --bits value:", "",
                  "| graph | tensor | weights | sensitivity | step / RMS |", "|---|---|---:|---:|---:|"]
        for part in PARTS:
            _, tensors = onnx_weights.split(getattr(reference_codec.model, f"{part}_path"))
            chosen = {n: tensors[n] for n in measured[part]}
            units = unit_steps(chosen, measured[part])
            arrays = [(a, units[n]) for n, a in chosen.items()]
            scale = choose_scale(arrays, WeightCodecConfig(target_bits_per_weight=args.bits[0]), 0)
            for name, array in chosen.items():
                rms = float(np.sqrt(np.mean(np.square(array, dtype=np.float64))))
                lines.append(f"| {part} | {name} | {array.size} | {measured[part][name]:.3g} | "
                             f"{step_of(array, units[name], scale) / rms:.3g} |")
    publish("\n".join(lines), args.out,
            f"python scripts/weights_dogfood.py --data {args.data} --bits {' '.join(f'{b:g}' for b in args.bits)} "
            + (f"--rms-bits {' '.join(f'{b:g}' for b in args.rms_bits)} " if args.rms_bits else "")
            + f"--allocations {' '.join(args.allocations)} --calibration {args.calibration}"
            + (f" --deadzone {args.deadzone:g}" if args.deadzone != WeightCodecConfig().deadzone else "")
            + (f" --out {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
