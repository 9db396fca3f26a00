"""Average the weights of runs that started from the same weights (a "model soup").

    python scripts/average_weights.py runs/v9w/weights.pt gpu2.pt --shared checkpoints/shae-v9-training.pt \
        --out soup.pt

Runs fine-tuned from one starting point can be averaged weight by weight, and the average often
beats each run (Wortsman et al., "Model soups", ICML 2022). The result is a weights file for
scripts/train.py --init and eval_checkpoint.py; its record counts the work of every run once:
total steps and CPU/GPU hours are the runs' totals minus the shared start's, counted once.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from imgcodec.train.training import save_weight_tensors


def load(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "model" not in state or "architecture" not in state:
        raise SystemExit(f"{path} is not a weights file of scripts/train.py --save-weights")
    return state


def averaged_record(runs: list[dict[str, Any]], shared: dict[str, Any]) -> dict[str, float]:
    """Total steps and hours behind the average: the shared start once, plus each run's own."""
    record = {}
    for key in ("total_steps", "total_cpu_hours", "total_gpu_hours"):
        start = float(shared.get(key, 0.0))
        total = start + sum(float(run.get(key, start)) - start for run in runs)
        record[key] = int(total) if key == "total_steps" else round(total, 4)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="+", help="weights files (--save-weights) of the runs")
    parser.add_argument("--shared", type=Path, required=True, help="the weights all the runs started from")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if len(args.weights) < 2:
        raise SystemExit("give two or more weights files")
    runs = [load(path) for path in args.weights]
    shared = load(args.shared)
    first = runs[0]
    for path, run in zip(args.weights, runs):
        if run["architecture"] != first["architecture"] or run["model_config"] != first["model_config"]:
            raise SystemExit(f"{path} is another architecture or configuration than {args.weights[0]}")
    model = {}
    for name, tensor in first["model"].items():
        if tensor.is_floating_point():
            mean = torch.stack([run["model"][name].double() for run in runs]).mean(dim=0)
            model[name] = mean.to(tensor.dtype)
        else:
            model[name] = tensor
    dtype = getattr(torch, first.get("weights_dtype", "torch.float32").removeprefix("torch."))
    save_weight_tensors(args.out, model, {
        "architecture": first["architecture"], "model_config": first["model_config"],
        "train_config": first["train_config"], "step": 0, **averaged_record(runs, shared),
        "init": " + ".join(str(p) for p in args.weights), "averaged": "mean of the runs' weights"}, dtype)
    print(f"{args.out}: mean of {len(runs)} runs' weights, {averaged_record(runs, shared)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
