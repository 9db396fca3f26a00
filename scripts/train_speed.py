"""Seconds per training step of each architecture, in float32, channels-last and bf16 autocast.

    python scripts/train_speed.py --steps 6          # batch 8 of 128x128, 2 threads, median of steps 2..N
    python scripts/train_speed.py --arch shae-v9 --modes float32 --steps 12
    python scripts/train_speed.py --arch shae-v9 --modes bf16 --device cuda --batch 32 --crop 256 --profile 20

Each step is what scripts/train.py does: forward, the rate-distortion loss, backward, Adam. Run
it on an idle machine: every other process on the two cores shows up in the numbers. On a GPU the
crops are made there (no loader); --profile N then lists the N operators that took the most time
over the last step, to find what holds a step back (torch.profiler).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

# Threads that wait for work sleep instead of spinning: beside another busy process a two-thread
# step then costs 1.46 s instead of 2.24 s, and alone the same 0.78 s (docs/training.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from imgcodec.train.architectures import ARCHITECTURES


#: Modes by name, with their column headings.
MODES = {"float32": "float32", "channels_last": "channels-last", "bf16": "bf16 autocast"}


def seconds_per_step(arch: str, mode: str, steps: int, batch: int, crop: int, max_seconds: float,
                     config: dict | None = None, device: str = "cpu", profile: int = 0) -> float:
    torch.manual_seed(0)
    spec = ARCHITECTURES[arch]
    model = spec.model_type(spec.config(config)).to(device)
    x = torch.rand(batch, 3, crop, crop, device=device)  # N,3,H,W
    if mode == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 1e-5)
    lambdas = torch.tensor(model.cfg.lambdas, device=device)
    on_gpu = torch.device(device).type == "cuda"

    def step() -> None:
        level = torch.randint(0, len(lambdas), (batch,), device=device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=mode == "bf16"):
            out = model(x, level)
        mse = ((out["x_hat"].float() - x) ** 2).mean(dim=(1, 2, 3))  # N
        loss = (lambdas[level] * 255 ** 2 * mse + out["bits"] / (crop * crop)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if on_gpu:
            torch.cuda.synchronize()

    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
        if sum(times) > max_seconds:
            break
    if profile:
        activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if on_gpu else [])
        with torch.profiler.profile(activities=activities) as prof:
            step()
        key = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=profile))
    return statistics.median(times[1:] or times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop a slow mode after this long")
    parser.add_argument("--arch", nargs="*", choices=sorted(ARCHITECTURES), default=None, help="default: all")
    parser.add_argument("--modes", nargs="*", choices=MODES, default=list(MODES))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--profile", type=int, default=0, help="list the N costliest operators of one more step")
    parser.add_argument("--model-config", default=None,
                        help='JSON object over the architecture\'s default config, e.g. \'{"num_centers": 83}\'')
    args = parser.parse_args(argv)
    config = json.loads(args.model_config) if args.model_config else None
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads} threads, device {args.device}, batch {args.batch} of {args.crop}x{args.crop}")
    print("| architecture | " + " | ".join(MODES[m] for m in args.modes) + " |\n|---|"
          + "---:|" * len(args.modes))
    for arch in args.arch or ARCHITECTURES:
        seconds = [seconds_per_step(arch, mode, args.steps, args.batch, args.crop, args.max_seconds, config,
                                    args.device, args.profile) for mode in args.modes]
        cells = [f"{value:.3f} s" for value in seconds]
        print(f"| {arch} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
