"""Where a model's encode and decode spend their time: transforms, integer networks, range coder.

    python scripts/profile_codec.py                              # the default model, a val photo
    SHAEC_MODELS_DIR=/tmp/models-v9 python scripts/profile_codec.py --model shae-v9 --image PHOTO

Times one library encode and decode (after a warm-up) and splits them by cProfile into the ONNX
Runtime transforms, the integer networks of the entropy model (imgcodec.integer_net), the range
coder (constriction) and the rest; then times each ONNX graph of the model alone on inputs of the
image's shapes and splits it by operator (ONNX Runtime's own profiler). For speed itself, with
start-up and memory, use scripts/bench_speed.py.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from imgcodec import codec as codec_api
from imgcodec.imageio import load_image
from imgcodec.zoo import find_model

#: cProfile entries by the file or built-in they belong to, in the order they are matched.
STAGES = (("transforms (ONNX Runtime)", ("onnxruntime",)),
          ("entropy model's integer networks", ("integer_net.py",)),
          ("range coder", ("RangeEncoder", "RangeDecoder", "coder.py")))


def stage_times(run: Callable[[], object]) -> dict[str, float]:
    """Seconds of run() spent in each of STAGES (own time of the matching functions) and the rest."""
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.runcall(run)
    total = time.perf_counter() - started
    spent = dict.fromkeys([name for name, _ in STAGES], 0.0)
    for (filename, _, function), (_, _, own, _, _) in pstats.Stats(profile).stats.items():
        where = f"{filename} {function}"
        for name, keys in STAGES:
            if any(key in where for key in keys):
                spent[name] += own
                break
    spent["other"] = total - sum(spent.values())
    spent["total (under cProfile)"] = total
    return spent


def graph_profile(path: Path, shape: tuple[int, ...], repeat: int = 3) -> tuple[float, dict[str, float]]:
    """Best of `repeat` runs of one .onnx graph on random input of `shape`, and its operators'
    shares of the kernel time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"shaec-profile-{os.getpid()}")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    session.run(None, feed)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - started)
    trace = Path(session.end_profiling())
    by_op: dict[str, float] = {}
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            by_op[op] = by_op.get(op, 0.0) + event["dur"]
    trace.unlink()
    kernel = sum(by_op.values()) or 1.0
    return best, {op: us / kernel for op, us in sorted(by_op.items(), key=lambda kv: -kv[1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="installed model (default: the default model)")
    parser.add_argument("--image", type=Path, default=Path("data/val/lomiri-wallpapers-16.04-Dragonfly_by_Bolly.png"))
    parser.add_argument("--quality", type=int, default=5)
    args = parser.parse_args()
    info = find_model(args.model)
    image = load_image(args.image).rgb

    def encode() -> bytes:
        return codec_api.compress(image, args.quality, info.name)

    codec_api.get_codec(info.name)  # the model loaded, as a CLI process does before its one call
    started = time.perf_counter()
    data = encode()
    first_encode = time.perf_counter() - started
    started = time.perf_counter()
    codec_api.decompress(data)  # with the encode: the warm-up (sessions created, caches filled)
    first_decode = time.perf_counter() - started
    height, width = image.shape[:2]
    print(f"{info.name} ({info.model_id}), level {args.quality}, {args.image} ({width}x{height}), "
          f"{len(data) * 8 / (width * height):.3f} bpp")
    print(f"first encode and decode in this process (what one CLI call pays, the model loaded): "
          f"{first_encode:.3f} s, {first_decode:.3f} s")
    for operation, run in (("encode", encode), ("decode", lambda: codec_api.decompress(data))):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - started)
        print(f"\n{operation}: {best:.3f} s (best of 3)")
        for name, seconds in stage_times(run).items():
            print(f"  {name:<36}{seconds:7.3f} s")
    if info.meta.get("architecture") != "shae-v9":
        return 0  # shae-v8's graphs take a level and shapes of their own; its stages above suffice
    print("\nONNX graphs alone (best of 3), share of kernel time by operator:")
    latent = (1, info.meta["config"]["latent_channels"], -(-height // 16), -(-width // 16))
    for path in sorted(info.folder.glob("*.onnx")):
        shape = (1, 3, height, width) if path.stem in ("encoder", "detail_encoder") else latent
        seconds, shares = graph_profile(path, shape)
        top = ", ".join(f"{op} {share:.0%}" for op, share in list(shares.items())[:4])
        print(f"  {path.name:<22}{seconds:7.3f} s   {top}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
