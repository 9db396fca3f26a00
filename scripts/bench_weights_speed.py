"""How long `shaec weights` takes on a model of real size: ResNet-50's tensors (25.6 million
values in 320 tensors), He-initialised with a fixed seed, as a safetensors file.

    python scripts/bench_weights_speed.py [--repeat 3]

Each row is a whole `shaec weights` process (start-up included), the median of the runs; the
file sizes are those of the .shaw files written. No data or network access is needed: the
tensors only have ResNet-50's shapes (He et al., CVPR 2016; torchvision's layout), not its
trained values, so the ratios say little about a trained network's (docs/weights.md has those).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imgcodec.weights.safetensors_files import write_safetensors


def resnet50_tensors(seed: int = 0) -> dict[str, tuple[np.ndarray, str]]:
    """ResNet-50's state_dict shapes (bottleneck blocks 3, 4, 6, 3; widths 64 to 512, four
    times that out), convolutions He-initialised, batch norms at their initial values."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, tuple[np.ndarray, str]] = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        std = np.sqrt(2.0 / (out * k * k))  # fan-out mode, as torchvision initialises them
        tensors[f"{name}.weight"] = (rng.normal(0, std, (out, inp, k, k)).astype(np.float32), "<f4")

    def norm(name: str, channels: int) -> None:
        for field, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            tensors[f"{name}.{field}"] = (np.full(channels, value, np.float32), "<f4")
        tensors[f"{name}.num_batches_tracked"] = (np.zeros((), np.int64), "<i8")

    conv("conv1", 64, 3, 7)
    norm("bn1", 64)
    inp = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for block in range(blocks):
            name = f"layer{stage}.{block}"
            conv(f"{name}.conv1", width, inp, 1)
            norm(f"{name}.bn1", width)
            conv(f"{name}.conv2", width, width, 3)
            norm(f"{name}.bn2", width)
            conv(f"{name}.conv3", 4 * width, width, 1)
            norm(f"{name}.bn3", 4 * width)
            if block == 0:
                conv(f"{name}.downsample.0", 4 * width, inp, 1)
                norm(f"{name}.downsample.1", 4 * width)
            inp = 4 * width
    bound = 1 / np.sqrt(2048)
    tensors["fc.weight"] = (rng.uniform(-bound, bound, (1000, 2048)).astype(np.float32), "<f4")
    tensors["fc.bias"] = (rng.uniform(-bound, bound, 1000).astype(np.float32), "<f4")
    return tensors


def timed(args: list[str], repeat: int, folder: Path) -> float:
    """Median seconds of `shaec ARGS` as a process, run in folder."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        # run from elsewhere: `python -m` puts the working directory first on sys.path, and a
        # checkout there would shadow the imgcodec that PYTHONPATH or the install names
        subprocess.run([sys.executable, "-m", "imgcodec.cli", *args], check=True, capture_output=True, cwd=folder)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="weights-speed-") as tmp:
        folder = Path(tmp)
        model = folder / "resnet50.safetensors"
        tensors = resnet50_tensors()
        model.write_bytes(write_safetensors(tensors))
        count = sum(a.size for a, _ in tensors.values())
        print(f"ResNet-50's shapes: {count:,} values in {len(tensors)} tensors, {model.stat().st_size:,} bytes")
        print("| command | seconds | .shaw bytes |")
        print("|---|---:|---:|")
        runs = [("compress (3 bits/weight)", ["weights", "compress", str(model), "-o", str(folder / "a.shaw"), "-f"],
                 folder / "a.shaw"),
                ("compress --size 8MB", ["weights", "compress", str(model), "--size", "8MB", "-o",
                                         str(folder / "b.shaw"), "-f"], folder / "b.shaw"),
                ("compress --bits-per-weight 8", ["weights", "compress", str(model), "--bits-per-weight", "8", "-o",
                                                  str(folder / "c.shaw"), "-f"], folder / "c.shaw"),
                ("decompress -o .safetensors", ["weights", "decompress", str(folder / "a.shaw"), "-o",
                                                str(folder / "back.safetensors"), "-f"], None)]
        for label, command, output in runs:
            seconds = timed(command, args.repeat, folder)
            size = f"{output.stat().st_size:,}" if output is not None else "-"
            print(f"| {label} | {seconds:.2f} | {size} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
