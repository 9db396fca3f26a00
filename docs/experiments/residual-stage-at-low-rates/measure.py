"""What shae-v9's residual stage buys at each level: bits and PSNR with it and without it.

    SHAEC_MODELS_DIR=/tmp/models-v9 python docs/experiments/residual-stage-at-low-rates/measure.py --every 6 --levels 5

For every `--every`-th photo of data/detail and the first `--levels` levels: the real coder's
ideal code length and the decoded PSNR of the file as shae-v9 codes it, and of the same file
without the residual stage (its symbols zero, the side latent taken from the first stage alone,
the last channel group not coded at all), and the side latent's share of the bits.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from imgcodec import codec as codec_api
from imgcodec.codec_v9 import ShaeV9Codec
from imgcodec.hyperprior import _cost
from imgcodec.imageio import load_image
from imgcodec.runtime import OnnxGraph
from imgcodec.zoo import graph_path


def decoded(codec: ShaeV9Codec, symbols: np.ndarray, level: int, height: int, width: int) -> np.ndarray:
    """The decoder's image 3,H,W (0..255 floats) of y symbols at a level."""
    inverse = codec._gains(codec.inverse_gains, level, 0)[:, None, None]
    image = codec.runtime.synthesis((codec.y_centers[symbols] * inverse).astype(np.float32))
    return np.clip(np.rint(image * 255), 0, 255)[:, :height, :width]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=6)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path("data/detail"))
    args = parser.parse_args()
    codec = codec_api.get_codec("shae-v9")
    if not isinstance(codec, ShaeV9Codec) or not codec.detail_channels:
        raise SystemExit("the installed shae-v9 has no residual stage")
    tables, t = codec.tables, codec.transform_channels
    zero = int(np.abs(codec.y_centers).argmin())
    hyper = OnnxGraph(graph_path(codec.info, "hyper_encoder"), None)
    rows: dict[int, list[tuple[float, ...]]] = {}
    for path in sorted(args.data.glob("*.png"))[::args.every]:
        rgb = np.ascontiguousarray(load_image(path).rgb[..., :3])
        height, width = rgb.shape[:2]
        pixels, reference = height * width, rgb.transpose(2, 0, 1)
        analysed = codec.analysis(rgb)
        for level in range(args.levels):
            y, z = codec.symbols_of(rgb, level, 0, analysed)
            side = _cost(tables._z_order(z), tables.z_counts, tables._z_ids(z.shape))
            with_stage = tables.encode_with_cost(y, z)[1]
            without = y.copy()
            without[t:] = zero
            first = analysed * codec._gains(codec.gains, level, 0)[:t, None, None]
            latent = np.concatenate([first, np.zeros((y.shape[0] - t,) + first.shape[1:], np.float32)])
            z0 = np.searchsorted(codec.z_thresholds, hyper(np.ascontiguousarray(latent, np.float32), 0)).astype(np.int32)
            bits = _cost(tables._z_order(z0), tables.z_counts, tables._z_ids(z0.shape))
            features, start = tables.features(z0), 0
            for group, size in enumerate(tables.groups[:-1]):  # the residual stage's group is not coded
                ids = tables.group_table_ids(group, features, without[:start] if start else None)
                bits += _cost(without[start:start + size], tables.y_rows, ids)
                start += size
            row = (with_stage / pixels, psnr(decoded(codec, y, level, height, width), reference),
                   bits / pixels, psnr(decoded(codec, without, level, height, width), reference), side / with_stage)
            rows.setdefault(level, []).append(row)
            print(f"{path.name[:32]:32s} level {level + 1}: with {row[0]:.3f} bpp / {row[1]:.2f} dB, "
                  f"without {row[2]:.3f} / {row[3]:.2f}, side latent {100 * row[4]:.1f} % of the bits", flush=True)
    print("\nlevel  bpp with  PSNR with  bpp without  PSNR without  side latent %")
    for level, values in rows.items():
        mean = np.mean(values, axis=0)
        print(f"{level + 1:5d}  {mean[0]:8.3f}  {mean[1]:9.2f}  {mean[2]:11.3f}  {mean[3]:12.2f}  {100 * mean[4]:13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
