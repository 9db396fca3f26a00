"""What storing an installed model's ONNX weights as .shaw costs, per level, in rate and PSNR.

    python scripts/weights_dogfood.py --data data/val --bits 8 6 5 4 --out docs/bench/weights-dogfood.md

The encoder and decoder graphs are split from their weights (imgcodec.weights.onnx_weights),
the weights compressed with `shaec weights`' no-data mode at each bits-per-weight target, and
the sessions rebuilt from the .shaw bytes. The prior's integer tables are untouched, so every
file still decodes; what changes is the encoder's latent (rate) and the decoder's pixels (PSNR).
The bar for shipping compressed models: at most -0.05 dB and +-0.5 % bits at every level, and
models/ at least 8x smaller.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from imgcodec.bench.report import publish
from imgcodec.codec import Codec
from imgcodec.evaluation import evaluate
from imgcodec.weights import onnx_weights
from imgcodec.weights.codec import WeightCodecConfig, compress_tensors
from imgcodec.weights.container import pack
from imgcodec.weights.tensors import _dtype_name
from imgcodec.zoo import find_model


class _Session:
    """runtime.OnnxGraph's interface over a session rebuilt from .shaw weights."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name  # type: ignore[attr-defined]

    def __call__(self, tensor: np.ndarray, level: int) -> np.ndarray:
        feed = {self.input_name: tensor[None], "level": np.array([level], dtype=np.int64)}
        return self.session.run(None, feed)[0][0]  # type: ignore[attr-defined]


def compressed_codec(model: str | None, bits: float) -> tuple[Codec, int, int]:
    """(a codec whose transforms run from .shaw weights, .shaw bytes, ONNX bytes they replace)."""
    codec = Codec(find_model(model))
    shaw_bytes = onnx_bytes = 0
    for part in ("encoder", "decoder"):
        path = getattr(codec.model, f"{part}_path")
        graph, tensors = onnx_weights.split(path)
        records = compress_tensors({k: (v, _dtype_name(v.dtype)) for k, v in tensors.items()},
                                   WeightCodecConfig(target_bits_per_weight=bits))
        shaw = pack(records)
        setattr(codec.runtime, f"_{part}", _Session(onnx_weights.session(graph, shaw)))
        shaw_bytes += len(shaw) + len(graph)
        onnx_bytes += path.stat().st_size
    return codec, shaw_bytes, onnx_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/val"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--bits", type=float, nargs="+", default=[8.0, 6.0, 5.0, 4.0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(args.data.glob("*.png"))]
    reference_codec = Codec(find_model(args.model))
    reference = evaluate(reference_codec, images)
    lines = [f"{reference_codec.info.name} on {len(images)} photos of {args.data}: change against the "
             "float32 ONNX weights, worst level and mean over the levels.", "",
             "| bits/weight | weights bytes (graphs + .shaw) | smaller by | worst rate change % | mean rate change % "
             "| worst PSNR change dB | mean PSNR change dB |",
             "|---|---|---|---|---|---|---|"]
    for bits in args.bits:
        codec, shaw_bytes, onnx_bytes = compressed_codec(args.model, bits)
        results = evaluate(codec, images)
        rate = [100 * (r.bpp / ref.bpp - 1) for r, ref in zip(results, reference)]
        psnr = [r.psnr - ref.psnr for r, ref in zip(results, reference)]
        lines.append(f"| {bits:g} | {shaw_bytes} | {onnx_bytes / shaw_bytes:.1f}x | {max(rate, key=abs):+.2f} | "
                     f"{np.mean(rate):+.2f} | {min(psnr):+.3f} | {np.mean(psnr):+.3f} |")
        print(lines[-1], flush=True)
    publish("\n".join(lines), args.out,
            f"python scripts/weights_dogfood.py --data {args.data} --bits {' '.join(f'{b:g}' for b in args.bits)}"
            + (f" --out {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
