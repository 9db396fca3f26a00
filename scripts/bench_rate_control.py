"""How close `shaec encode --size` / `--bpp` comes to its target, and what the search inside a
level buys over choosing among the levels alone.

    python scripts/bench_rate_control.py data/detail --out docs/bench/rate-control.md

For every photo and target rate: the file `Codec.encode_to_size` writes (levels, then a tau
search inside the next level), against the highest plain level that fits (what the levels alone
give). Reports the achieved share of the target and the PSNR of both, in real file bytes.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from imgcodec.bench.report import publish
from imgcodec.codec import get_codec
from imgcodec.metrics import psnr_rgb

TARGETS_BPP = (0.25, 0.5, 0.75, 1.0, 1.5)
WITHIN = 0.03  # the rate-control tolerance: at most 3 % under the target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS_BPP), help="bits per pixel")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)

    codec = get_codec()
    paths = sorted(args.folder.glob("*.png"))
    if not paths:
        raise SystemExit(f"no PNG files in {args.folder}")
    rows: dict[float, list[tuple[float, float, float, bool]]] = {t: [] for t in args.targets}
    seconds = []
    for number, path in enumerate(paths, 1):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        pixels = rgb.shape[0] * rgb.shape[1]
        plain = [codec.encode(rgb, q) for q in codec.qualities]
        for target in args.targets:
            budget = int(target * pixels / 8)
            started = time.perf_counter()
            result = codec.encode_to_size(rgb, budget)
            seconds.append(time.perf_counter() - started)
            fitting = [r for r in plain if len(r.data) <= budget] or plain[:1]
            levels_only = fitting[-1]
            rows[target].append((len(result.data) / budget,
                                 psnr_rgb(rgb, codec.decode_bytes(result.data)[..., :3]),
                                 psnr_rgb(rgb, codec.decode_bytes(levels_only.data)[..., :3]),
                                 len(levels_only.data) >= (1 - WITHIN) * budget))
        print(f"[{number}/{len(paths)}] {path.name}", flush=True)

    lines = [f"{len(paths)} photos of {args.folder} ({codec.info.name}); size = file bytes / target bytes.", "",
             "| target bpp | mean size | worst size | within 3 % | PSNR dB | levels alone: within 3 % | PSNR dB |",
             "|---|---|---|---|---|---|---|"]
    for target, entries in rows.items():
        share = np.array([e[0] for e in entries])
        lines.append(f"| {target:g} | {share.mean():.3f} | {share.min():.3f} | "
                     f"{np.mean(share >= 1 - WITHIN) * 100:.0f} % | {np.mean([e[1] for e in entries]):.2f} | "
                     f"{np.mean([e[3] for e in entries]) * 100:.0f} % | {np.mean([e[2] for e in entries]):.2f} |")
    lines += ["", f"Time per `encode_to_size`: mean {np.mean(seconds):.2f} s, max {np.max(seconds):.2f} s "
              "(shared machine)."]
    publish("\n".join(lines), args.out, f"python scripts/bench_rate_control.py {args.folder} --out {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
