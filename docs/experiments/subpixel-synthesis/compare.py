"""shae-v9's synthesis exported as is (ConvTranspose) and with sub-pixel convolutions: same
output, which is faster under ONNX Runtime on this CPU?

    python docs/experiments/subpixel-synthesis/compare.py checkpoints/shae-v9-training.pt

A ConvTranspose2d with stride s is s*s small convolutions of its input, one per output phase,
interleaved (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016): stacked as one Conv2d's output channels and
interleaved by PixelShuffle (ONNX DepthToSpace) they compute the same function.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from imgcodec.runtime import OnnxGraph
from imgcodec.train.training import load_model


class SubpixelConv(nn.Module):
    """Zero padding, a Conv2d with stride*stride phases per output channel, PixelShuffle(stride)."""

    def __init__(self, pad: tuple[int, int], conv: nn.Conv2d, stride: int) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((pad[0], pad[1], pad[0], pad[1]))  # left, right, top, bottom
        self.conv = conv
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N,C,h,w -> N,C',s*h,s*w
        return self.shuffle(self.conv(self.pad(x)))


def subpixel_of(deconv: nn.ConvTranspose2d) -> SubpixelConv:
    """The SubpixelConv that computes what `deconv` computes, for the layers whose output is exactly
    stride times the input (kernel + output_padding - 2 * padding == stride), square, ungrouped.

    Output row s*m + r reads input rows i = m + d with kernel tap j = r + padding - s*d, for the d
    that put j inside the kernel; the convolution's tap t = d + pad_before."""
    (k, k2), (s, s2), (p, p2) = deconv.kernel_size, deconv.stride, deconv.padding
    op = deconv.output_padding[0]
    if (k, s, p, op) != (k2, s2, p2, deconv.output_padding[1]) or deconv.groups != 1 or deconv.dilation != (1, 1):
        raise ValueError("only square, ungrouped, undilated transposed convolutions are rewritten")
    if k + op - 2 * p != s:
        raise ValueError(f"output is not {s} times the input (kernel {k}, padding {p}, output_padding {op})")
    d_min, d_max = -((k - 1 - p) // s), (s - 1 + p) // s  # d with 0 <= r + p - s*d < k for some r
    taps = d_max - d_min + 1
    weight = deconv.weight.detach()  # in,out,k,k
    c_in, c_out = weight.shape[:2]
    kernel = torch.zeros(c_out, s, s, c_in, taps, taps, dtype=weight.dtype)  # out,rh,rw,in,th,tw
    for r in range(s):
        for t in range(taps):
            j = r + p - s * (t + d_min)
            if not 0 <= j < k:
                continue
            for r2 in range(s):
                for t2 in range(taps):
                    j2 = r2 + p - s * (t2 + d_min)
                    if 0 <= j2 < k:
                        kernel[:, r, r2, :, t, t2] = weight[:, :, j, j2].T
    conv = nn.Conv2d(c_in, c_out * s * s, taps, bias=deconv.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(kernel.reshape(c_out * s * s, c_in, taps, taps))
        if deconv.bias is not None:
            conv.bias.copy_(deconv.bias.detach().repeat_interleave(s * s))
    return SubpixelConv((-d_min, d_max), conv, s)


def with_subpixel_convs(module: nn.Module) -> nn.Module:
    """A deep copy of `module` with every ConvTranspose2d replaced by its subpixel_of."""
    module = copy.deepcopy(module)
    for name, child in list(module.named_modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.ConvTranspose2d):
                setattr(child, attr, subpixel_of(sub))
    return module


class _Synthesis(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.model.reconstruct(latent)


def best_time(path: Path, latent: np.ndarray, repeat: int = 5) -> tuple[float, np.ndarray]:
    """Best of `repeat` runs of the graph at `path` on latent (1,M,h,w), as the runtime loads it
    (imgcodec.runtime.OnnxGraph), and its output."""
    graph = OnnxGraph(path, threads=None)
    out = graph(latent[0], 0)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        graph(latent[0], 0)
        best = min(best, time.perf_counter() - started)
    return best, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--size", default="768x512", help="image size WxH (multiples of 16)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    model, _ = load_model(args.checkpoint)
    model.eval()
    latent = np.random.default_rng(0).normal(0, 2, (1, model.cfg.latent_channels, height // 16, width // 16))
    latent = latent.astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = {}
        for name, module in (("ConvTranspose", model), ("sub-pixel", with_subpixel_convs(model))):
            path = Path(tmp) / f"{name}.onnx"
            torch.onnx.export(_Synthesis(module), (torch.from_numpy(latent),), str(path), input_names=["latent"],
                              output_names=["image"], opset_version=17, dynamo=False)
            results[name] = best_time(path, latent)
    gap = float(np.abs(results["ConvTranspose"][1] - results["sub-pixel"][1]).max())
    for name, (seconds, _) in results.items():
        print(f"{name:<14} {seconds:.3f} s at {width}x{height} (best of 5)")
    print(f"largest difference of the two outputs: {gap:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
