"""Train the variable-rate soft-to-hard autoencoder on CPU (or several processes with torchrun).

    python scripts/train.py --run-dir runs/base --steps 15000          # start or resume
    torchrun --nproc_per_node 2 scripts/train.py --run-dir runs/ddp --steps 10   # DDP (gloo on CPU)

    python scripts/train.py --run-dir runs/v3 --init checkpoints/shae-v2.pt \
        --model-config '{"synthesis_blocks4": 3}' --steps 12000   # warm start a grown model

Resumes automatically from RUN/checkpoint.pt (model, optimizer, schedule, step, RNG states).
Writes RUN/train_log.csv (every 50 steps) and RUN/val_log.csv (real bitrates through the range
coder, every --val-every steps).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from imgcodec.autoencoder import SoftToHardAutoencoder
from imgcodec.config import ModelConfig, TrainConfig
from imgcodec.quantizer import STE_MODES
from imgcodec.training import CropSampler, load_images, load_model, save_checkpoint, validate
from imgcodec.warm_start import grow

VAL_IMAGES = 4  # periodic validation: lowest, middle and highest level on 4 val photos


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="run folder (checkpoint and logs)")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--crop", type=int, default=defaults.crop)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--val-every", type=int, default=defaults.val_every)
    parser.add_argument("--ckpt-every", type=int, default=defaults.ckpt_every)
    parser.add_argument("--model-config", default=None,
                        help="JSON object overriding ModelConfig fields for a NEW run, e.g. '{\"latent_channels\": 8}'")
    parser.add_argument("--init", type=Path, default=None,
                        help="start a NEW run from this checkpoint's weights, grown to its config plus "
                             "--model-config (imgcodec.warm_start); ignored when resuming")
    parser.add_argument("--new-channel-warmup", type=int, default=0,
                        help="with --init and more latent channels: for this many steps the rate term does "
                             "not push the new channels' latents (the prior still learns them), then its "
                             "pull rises linearly to full over as many steps again")
    parser.add_argument("--hold-new-gains", action="store_true",
                        help="with --init and more latent channels: the new channels' per-level gains keep "
                             "their starting values for the whole run (no gradient), so that the rate term "
                             "can silence a new channel only slowly, through the encoder")
    parser.add_argument("--sigma-start", type=float, default=None,
                        help=f"soft-assignment sharpness at step 0 (default {defaults.sigma_start}, or the run's own when resuming)")
    parser.add_argument("--sigma-end", type=float, default=None,
                        help=f"... and at the last step (default {defaults.sigma_end}, or the run's own)")
    parser.add_argument("--ste", choices=STE_MODES, default=None,
                        help=f"decoder-input gradient through the quantizer (default {defaults.ste}, or the run's own)")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="leave after this many steps in this invocation (the schedule still spans --steps)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def append_csv(path: Path, row: dict[str, object]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def new_channel_pull(train_cfg: TrainConfig, model_cfg: ModelConfig, step: int) -> torch.Tensor | None:
    """Per-channel scale of the rate term's pull on the latents (ContextPriorNet.bits): 0 for
    the channels a warm start added during the warm-up, rising to 1 over as many steps again."""
    warmup = int(train_cfg.extra.get("new_channel_warmup", 0))
    first_new = int(train_cfg.extra.get("new_channels_from", model_cfg.latent_channels))
    if warmup <= 0 or step >= 2 * warmup or first_new >= model_cfg.latent_channels:
        return None
    scale = torch.ones(model_cfg.latent_channels)
    scale[first_new:] = max(0.0, (step - warmup) / warmup)
    return scale


def hold_new_channel_gains(model: SoftToHardAutoencoder, train_cfg: TrainConfig) -> None:
    """Zero the gradient of the added channels' gains (--hold-new-gains). The gains learn 10x
    faster than the transforms, and in earlier grown runs the rate term shrank a new channel's
    gain until its whole latent sat in the zero bin, before the decoder had learned to use it
    (README, "Why added channels die"). Adam never moves a parameter whose gradient was always 0."""
    if not train_cfg.extra.get("hold_new_gains"):
        return
    first_new = int(train_cfg.extra["new_channels_from"])
    for gain in (model.log_gain, model.log_inv_gain):  # levels,C
        if gain.grad is not None:
            gain.grad[:, first_new:] = 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    rank, world = 0, 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    is_main = rank == 0
    torch.set_num_threads(max(1, args.threads // world) if distributed else args.threads)

    ckpt_path = args.run_dir / "checkpoint.pt"
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.exists() else None
    init_model = None
    saved = TrainConfig.from_dict(state["train_config"]) if state else TrainConfig()
    if state:
        model_cfg = ModelConfig.from_dict(state["model_config"])
    elif args.init:
        init_model, _ = load_model(args.init)
        model_cfg = ModelConfig.from_dict({**init_model.cfg.to_dict(), **json.loads(args.model_config or "{}")})
    else:
        model_cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), **json.loads(args.model_config or "{}")})
    train_cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, crop=args.crop, lr=args.lr,
                            sigma_start=saved.sigma_start if args.sigma_start is None else args.sigma_start,
                            sigma_end=saved.sigma_end if args.sigma_end is None else args.sigma_end,
                            ste=saved.ste if args.ste is None else args.ste,
                            seed=args.seed, threads=args.threads, val_every=args.val_every,
                            ckpt_every=args.ckpt_every,
                            extra=({"init": str(args.init), "new_channels_from": init_model.cfg.latent_channels,
                                    "new_channel_warmup": args.new_channel_warmup,
                                    "hold_new_gains": args.hold_new_gains}
                                   if init_model is not None else saved.extra))
    torch.manual_seed(train_cfg.seed)
    model = grow(init_model, model_cfg, train_cfg.seed).train() if init_model is not None else SoftToHardAutoencoder(model_cfg)
    # The context prior starts from a flat distribution and the per-level gains must travel
    # far from their initial values (a factor of ~2 in a few thousand steps): both learn 10x
    # faster, like CompressAI's separate, faster entropy-model optimizer. So do the per-level
    # modulations: each level's row sees only the samples drawn at that level.
    fast_params = list(model.prior.parameters()) + model.level_parameters()
    fast_ids = {id(p) for p in fast_params}
    optimizer = torch.optim.Adam([
        {"params": [p for p in model.parameters() if id(p) not in fast_ids], "lr_scale": 1.0},
        {"params": fast_params, "lr_scale": 10.0},
    ], lr=train_cfg.lr)
    sampler = CropSampler(load_images(args.data / "train"), train_cfg.crop, train_cfg.seed + 1000 * rank)
    step, cpu_seconds = 0, 0.0
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        cpu_seconds = state.get("cpu_seconds", 0.0)
        if rank == 0:
            sampler.rng.bit_generator.state = state["sampler_rng"]
        else:  # other ranks: a fresh stream that depends on the step, so it never repeats rank 0's
            sampler.rng = np.random.default_rng(train_cfg.seed + 1000 * rank + step)
        torch.set_rng_state(state["torch_rng"])
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    val_images = load_images(args.data / "val")[:VAL_IMAGES] if is_main else []
    lambdas = torch.tensor(model_cfg.lambdas)
    log_dir = args.run_dir
    log_dir.mkdir(parents=True, exist_ok=True)

    bar = tqdm(total=train_cfg.steps, initial=step, disable=not is_main or args.no_progress,
               dynamic_ncols=True, smoothing=0.05)
    window: list[tuple[float, float, float]] = []
    stop_at = min(train_cfg.steps, step + args.stop_after) if args.stop_after else train_cfg.steps
    while step < stop_at:
        started = time.process_time()
        for group in optimizer.param_groups:
            group["lr"] = train_cfg.lr_at(step) * group["lr_scale"]
        sigma = train_cfg.sigma_at(step)
        x = sampler.batch(train_cfg.batch_size)  # N,3,H,W
        level = torch.randint(0, model_cfg.num_levels, (x.shape[0],))
        result = net(x, level, sigma, new_channel_pull(train_cfg, model_cfg, step), train_cfg.ste)
        mse = ((result.x_hat - x) ** 2).mean(dim=(1, 2, 3))  # N
        bpp = result.bits / (x.shape[2] * x.shape[3])  # N
        loss = (lambdas[level] * 255 ** 2 * mse + bpp).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        hold_new_channel_gains(model, train_cfg)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        step += 1
        cpu_seconds += time.process_time() - started
        psnr = (10 * torch.log10(1.0 / mse.detach().clamp_min(1e-10))).mean().item()
        window.append((loss.item(), bpp.mean().item(), psnr))
        if is_main:
            bar.update(1)
            if step % 10 == 0:
                mean = np.mean(window[-50:], axis=0)
                bar.set_postfix(loss=f"{mean[0]:.3f}", bpp=f"{mean[1]:.3f}", psnr=f"{mean[2]:.2f}",
                                sigma=f"{sigma:.2f}")
            if step % 50 == 0:
                mean = np.mean(window, axis=0)
                window.clear()
                append_csv(log_dir / "train_log.csv", {
                    "step": step, "loss": round(mean[0], 5), "bpp": round(mean[1], 5),
                    "psnr": round(mean[2], 3), "sigma": round(sigma, 4), "lr": train_cfg.lr_at(step),
                    "cpu_hours": round(cpu_seconds / 3600 * world, 4), "wall": round(time.time(), 1)})
            if step % train_cfg.ckpt_every == 0 or step == stop_at:
                save_checkpoint(ckpt_path, model, optimizer, step, train_cfg, sampler,
                                {"cpu_seconds": cpu_seconds})
            if step % train_cfg.val_every == 0 or step == train_cfg.steps:
                levels = sorted({0, model_cfg.num_levels // 2, model_cfg.num_levels - 1})
                for r in validate(model, val_images, levels):
                    append_csv(log_dir / "val_log.csv", {
                        "step": step, "level": r.level, "bpp_real": round(r.bpp_real, 5),
                        "bpp_estimate": round(r.bpp_estimate, 5), "psnr": round(r.psnr, 3)})
                    bar.write(f"step {step} level {r.level}: {r.bpp_real:.4f} bpp real "
                              f"({r.bpp_estimate:.4f} est), {r.psnr:.2f} dB")
    bar.close()
    if distributed:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
