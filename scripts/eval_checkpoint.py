"""Rate-distortion of a checkpoint on the validation photos, with BD-rates against a bench run.

Every quality level of the model codes every photo of ``--data/val`` into real .shae bytes
(``imgcodec.train.training.checkpoint_codec``: PyTorch transforms, which the exported ONNX graphs
match up to float rounding, with the runtime's rounding, tables and coder; for shae-v9 its frozen
integer entropy model) through the shared
``imgcodec.evaluation.evaluate``. It tells, without exporting, whether a training run is ahead
of the shipped model and of JPEG over the whole curve:

    python scripts/eval_checkpoint.py runs/v8/checkpoint.pt --anchors docs/bench/results.csv

BD-rates are in PSNR, against each codec of ``--anchor-codecs`` found in the anchors' results.csv.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from imgcodec.bench.bdrate import bd_rate_detailed, quality_at_rate
from imgcodec.bench.runner import read_records_csv, summarize_records
from imgcodec.evaluation import evaluate_images, mean_by_level
from imgcodec.metrics import ms_ssim_db
from imgcodec.train.data import image_names, load_images
from imgcodec.train.training import checkpoint_codec, load_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="training checkpoint or exported model (.pt)")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--split", default="val", help="folder of --data to evaluate on (val, detail, ...)")
    parser.add_argument("--anchors", type=Path, default=Path("docs/bench/results.csv"),
                        help="a bench run's results.csv holding the anchor curves")
    parser.add_argument("--anchor-codecs", default="jpeg,shaec",
                        help="comma-separated codecs of --anchors to compare with")
    parser.add_argument("--within", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                        help="narrow the PSNR interval of the BD-rates")
    parser.add_argument("--images", type=int, default=None,
                        help="only the first N photos (training's validation uses the first 4 of val)")
    parser.add_argument("--levels", type=int, nargs="*", default=None,
                        help="only these quality levels (1-based; training's validation: 1 6 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core to training)")
    parser.add_argument("--out", type=Path, default=None, help="also write the per-level table as CSV")
    parser.add_argument("--per-image", type=Path, default=None,
                        help="also write every photo's result at every level as CSV (which photos lose)")
    parser.add_argument("--ms-ssim", action="store_true",
                        help="also measure MS-SSIM (RGB), with its BD-rates (in dB, as shaec bench) against the anchors")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    model, state = load_model(args.checkpoint)
    names = image_names(args.data / args.split)[:args.images]
    images = load_images(args.data / args.split)[:args.images]
    rows = list(evaluate_images(checkpoint_codec(model), images, args.levels, ms_ssim=args.ms_ssim))
    results = mean_by_level(rows)
    print(f"{args.checkpoint} (step {state.get('step', '?')}), {len(images)} photos of {args.data / args.split}")
    ssim = ["ms_ssim"] if args.ms_ssim else []
    print("quality  bpp (file)  est.bpp (payload)  PSNR" + ("   MS-SSIM" if ssim else ""))
    for r in results:
        print(f"{r.quality:>7}  {r.bpp:>10.4f}  {r.bpp_estimate:>17.4f}  {r.psnr:.2f}"
              + (f"  {r.ms_ssim:.5f}" if ssim else ""))
    if args.out:
        with args.out.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["quality", "bpp", "bpp_estimate", "psnr"] + ssim)
            writer.writerows([r.quality, f"{r.bpp:.6f}", f"{r.bpp_estimate:.6f}", f"{r.psnr:.4f}"]
                             + ([f"{r.ms_ssim:.6f}"] if ssim else []) for r in results)
    if args.per_image:
        with args.per_image.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["quality", "image", "bpp", "bpp_estimate", "psnr"] + ssim)
            writer.writerows([r.quality, names[r.image], f"{r.bpp:.6f}", f"{r.bpp_estimate:.6f}", f"{r.psnr:.4f}"]
                             + ([f"{r.ms_ssim:.6f}"] if ssim else []) for r in rows)

    curves = summarize_records(read_records_csv(args.anchors))
    bpp, psnr = [r.bpp for r in results], [r.psnr for r in results]
    for name in [c.strip() for c in args.anchor_codecs.split(",") if c.strip()]:
        if name not in curves:
            print(f"BD-rate vs {name}: not in {args.anchors}")
            continue
        bd = bd_rate_detailed(curves[name].bpp, curves[name].psnr, bpp, psnr, args.within)
        if bd.percent is None:
            print(f"BD-rate vs {name} ({args.anchors}), PSNR: undefined ({bd.reason})")
        else:
            low, high = bd.quality_range
            print(f"BD-rate vs {name} ({args.anchors}), PSNR: {bd.percent:+.2f} % over {low:.2f}..{high:.2f} dB")
        ahead = [(r.quality, quality_at_rate(curves[name].bpp, curves[name].psnr, r.bpp)) for r in results]
        print(f"  PSNR ahead of {name} at each level's rate: " + ", ".join(
            f"q{quality} {'outside its rates' if theirs is None else f'{r.psnr - theirs:+.2f} dB'}"
            for (quality, theirs), r in zip(ahead, results)))
        if args.ms_ssim:
            bd = bd_rate_detailed(curves[name].bpp, curves[name].ms_ssim_db, bpp,
                                  [ms_ssim_db(r.ms_ssim) for r in results])
            print(f"BD-rate vs {name}, MS-SSIM (dB): "
                  + (f"undefined ({bd.reason})" if bd.percent is None else f"{bd.percent:+.2f} %"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
