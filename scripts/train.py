"""Train a codec architecture (imgcodec.train.architectures) on CPU or GPU, or on several processes.

    python scripts/train.py --run-dir runs/base --steps 15000          # shae-v8's layout: start or resume
    python scripts/train.py --run-dir runs/ft --init checkpoints/shae-v8.pt --lr 1e-5 --steps 2000
    python scripts/train.py --arch shae-v9 --run-dir runs/v9 --steps 200000 --lr 1e-4 --crop 256 --batch-size 2
    python scripts/train.py --arch shae-v9 --run-dir runs/v9 --init checkpoints/shae-v9-training.pt \
        --crops data/crops-256.npy --crop 256 --device cuda --bf16 --batch-size 16 --steps 200000   # on a GPU
    torchrun --nproc_per_node 2 scripts/train.py --run-dir runs/ddp --steps 10   # DDP (gloo on CPU)
    torchrun --nproc_per_node 2 scripts/train.py --run-dir runs/local --steps 10 --sync-every 50 --ckpt-every 50

On a CPU, two one-thread processes under torchrun (each with --batch-size 1) run 1.5x the steps
of one two-thread process, and 1.23x that again with --sync-every 50, local SGD: weights averaged
every 50 steps instead of gradients every step (docs/training.md, "Training speed on the CPU").

Resumes automatically from RUN/checkpoint.pt (model, optimizer, schedule, step, RNG states).
Writes RUN/train_log.csv (every 50 steps, with steps/s and CPU-hours) and RUN/val_log.csv (real
bitrates through the range coder, or the prior's estimate for an architecture without its coder
yet, every --val-every steps). --save-weights also writes the weights alone (bfloat16 for
shae-v9), small enough to commit, for a later run's --init. With --ema-decay, validation and
--save-weights use an exponential average of the weights (imgcodec.train.averaging), while
training continues from the raw ones (kept in checkpoint.pt with the average).

bf16 autocast (--bf16) runs the transforms in bfloat16 and keeps quantization and rates in
float32. It pays on GPUs and on CPUs with native BF16 (AVX512-BF16); on a CPU without it autocast is
16-26x slower, so it is off by default and refused there (docs/training.md has the measurements).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

# Threads that wait for work sleep instead of spinning: beside another busy process a two-thread
# step then costs 1.46 s instead of 2.24 s, and alone the same 0.78 s (docs/training.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.distributed as dist
from pytorch_msssim import ms_ssim
from tqdm import tqdm

from imgcodec.evaluation import evaluate
from imgcodec.metrics import MS_SSIM_MIN_SIDE
from imgcodec.train.architectures import ARCHITECTURES, architecture_of
from imgcodec.train.averaging import WeightAverage
from imgcodec.train.balance import LevelBalance
from imgcodec.train.config import DISTORTIONS, TrainConfig
from imgcodec.train.data import CropSampler, load_crops, load_images
from imgcodec.train.device_crops import DeviceCropSampler
from imgcodec.train.local_sgd import average_across_processes, synchronized_tensors
from imgcodec.train.training import (checkpoint_codec, load_model, make_optimizer, model_config_of,
                                     save_checkpoint, save_weights)

VAL_IMAGES = 4  # periodic validation: lowest, middle and highest level on 4 val photos


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="run folder (checkpoint and logs)")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="shae-v8",
                        help="architecture of a NEW run (a resumed or --init run keeps its own)")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--crops", type=Path, default=None,
                        help="train on this packed uint8 crops file (scripts/pack_crops.py) instead of --data/train")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--device-crops", action="store_true",
                        help="cut the crops on the training device (always on a GPU; on the CPU to test that path)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the transforms (see above)")
    parser.add_argument("--save-weights", type=Path, default=None,
                        help="at every checkpoint also write the weights alone here (to commit; --init continues)")
    # Training options default to None: a new run fills in TrainConfig's defaults, a resumed run its
    # recorded values (train_config_for).
    parser.add_argument("--steps", type=int, default=None, help=f"length of the schedule (default {defaults.steps}; "
                        "a resumed run may be lengthened)")
    parser.add_argument("--batch-size", type=int, default=None, help=f"default {defaults.batch_size}")
    parser.add_argument("--crop", type=int, default=None, help=f"default {defaults.crop}")
    parser.add_argument("--lr", type=float, default=None, help=f"default {defaults.lr}")
    parser.add_argument("--threads", type=int, default=None, help=f"default {defaults.threads}")
    parser.add_argument("--seed", type=int, default=None, help=f"default {defaults.seed}")
    parser.add_argument("--val-every", type=int, default=None, help=f"default {defaults.val_every}")
    parser.add_argument("--ckpt-every", type=int, default=None, help=f"default {defaults.ckpt_every}")
    parser.add_argument("--model-config", default=None,
                        help="JSON object overriding ModelConfig fields for a NEW run, e.g. '{\"latent_channels\": 8}'")
    parser.add_argument("--init", type=Path, default=None,
                        help="start a NEW run from this checkpoint's weights (same config); ignored when resuming")
    parser.add_argument("--sigma-start", type=float, default=None,
                        help=f"soft-assignment sharpness at step 0 (default {defaults.sigma_start})")
    parser.add_argument("--sigma-end", type=float, default=None,
                        help=f"... and at the last step (default {defaults.sigma_end})")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="leave after this many steps in this invocation (the schedule still spans --steps)")
    parser.add_argument("--stop-after-minutes", type=float, default=None,
                        help="leave (with a checkpoint) after this many minutes of training in this invocation, "
                             "e.g. to end inside a rented GPU's time")
    parser.add_argument("--distortion", choices=DISTORTIONS, default=None,
                        help=f"the loss's distortion (default {defaults.distortion}); ms-ssim needs --crop of "
                             "at least 161 (five scales)")
    parser.add_argument("--lambdas", default=None,
                        help="JSON list: the levels' lambdas for a NEW run (with --init: as many as the model "
                             "has levels), e.g. for an MS-SSIM fine-tune (docs/training.md)")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="validate and --save-weights an exponential average of the weights with this decay, "
                             f"e.g. 0.999 (default {defaults.ema_decay}: off); a resumed run may change it")
    parser.add_argument("--flat-crop-activity", type=float, default=None,
                        help="keep a training crop whose activity (mean absolute difference of neighbouring "
                             "pixels, 8-bit levels) is below this only with probability activity / this "
                             f"(default {defaults.flat_crop_activity}: off)")
    parser.add_argument("--level-balance", action="store_const", const=True, default=None,
                        help="weigh each crop's loss by the levels' mean running loss over its own level's, so "
                             "that every level pulls the shared weights alike (imgcodec.train.balance)")
    parser.add_argument("--colour-augment", action="store_const", const=True, default=None,
                        help="train on crops with random channel orders and, half the time, saturation "
                             "stretched by 1-1.5x (imgcodec.train.data.CropSampler)")
    parser.add_argument("--sync-every", type=int, default=None,
                        help="in a run of several processes (torchrun): average the processes' weights every "
                             "this many steps instead of their gradients every step (local SGD, "
                             f"imgcodec.train.local_sgd; default {defaults.sync_every}: data-parallel)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def with_lambdas(model_cfg: Any, text: str, fixed_count: bool) -> Any:
    """model_cfg with the levels' lambdas from a JSON list (a model started from another keeps its
    number of levels: the lambdas are training targets, not part of the shapes)."""
    try:
        values = [float(v) for v in json.loads(text)]
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"--lambdas must be a JSON list of numbers: {exc}") from exc
    if fixed_count and len(values) != len(model_cfg.lambdas):
        raise SystemExit(f"--lambdas: the model has {len(model_cfg.lambdas)} levels, got {len(values)} lambdas")
    try:
        return replace(model_cfg, lambdas=tuple(values))
    except ValueError as exc:
        raise SystemExit(f"--lambdas: {exc}") from exc


def past(deadline: float, step: int) -> bool:
    """Whether the run's time is up. In a distributed run the processes decide together, every
    10 steps (one leaving alone would leave the others waiting for its gradients)."""
    if not (dist.is_available() and dist.is_initialized()):
        return time.time() > deadline
    if step % 10:
        return False
    flag = torch.tensor([float(time.time() > deadline)])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def append_csv(path: Path, row: dict[str, object]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


#: Options a resumed run may change: how long it runs and how it reports, not what it optimizes.
RESUMABLE_CHANGES = ("steps", "threads", "val_every", "ckpt_every", "ema_decay", "sync_every")


def train_config_for(args: argparse.Namespace, recorded: dict[str, Any] | None, ckpt_path: Path) -> TrainConfig:
    """A new run's TrainConfig from the options given (defaults otherwise); a resumed run's from its
    checkpoint, where an option given with another value than the recorded one is refused unless it
    is in RESUMABLE_CHANGES (the schedule must not change under a run's feet)."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    if recorded is None:
        return TrainConfig(**given)
    config = TrainConfig(**recorded)
    for name, value in given.items():
        if name not in RESUMABLE_CHANGES and value != getattr(config, name):
            flag = "--" + name.replace("_", "-")
            raise SystemExit(f"{ckpt_path} was started with {flag} {getattr(config, name)}: resume it with "
                             f"{flag} {getattr(config, name)} or without {flag}")
    return replace(config, **{k: v for k, v in given.items() if k in RESUMABLE_CHANGES})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    rank, world = 0, 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    is_main = rank == 0

    ckpt_path = args.run_dir / "checkpoint.pt"
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.exists() else None
    init_state = None
    if state:
        arch = architecture_of(state)
        model_cfg = (model_config_of(state["model_config"]) if arch.name == "shae-v8"
                     else arch.config(state["model_config"]))
    elif args.init:
        init_model, init_state = load_model(args.init)
        arch = architecture_of(init_state)
        model_cfg = init_model.cfg
        if args.model_config:
            raise SystemExit("--model-config cannot change a model started with --init")
    else:
        arch = ARCHITECTURES[args.arch]
        model_cfg = arch.config(json.loads(args.model_config or "{}"))
    if args.lambdas and not state:
        model_cfg = with_lambdas(model_cfg, args.lambdas, fixed_count=init_state is not None)
    train_cfg = train_config_for(args, state["train_config"] if state else None, ckpt_path)
    torch.set_num_threads(max(1, train_cfg.threads // world) if distributed else train_cfg.threads)
    if train_cfg.crop % arch.multiple:
        raise SystemExit(f"--crop must be a multiple of {arch.multiple} for {arch.name}")
    if train_cfg.distortion == "ms-ssim" and train_cfg.crop < MS_SSIM_MIN_SIDE:
        raise SystemExit(f"--distortion ms-ssim needs --crop {MS_SSIM_MIN_SIDE} or more (five scales)")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one crop size throughout: let cuDNN pick its kernels
    if args.bf16 and device.type == "cpu" and not torch.cpu._is_avx512_bf16_supported():
        raise SystemExit("--bf16: this CPU has no native BF16 (AVX512-BF16), where autocast runs 16-26x "
                         "slower than float32 (docs/training.md); train without --bf16")
    torch.manual_seed(train_cfg.seed)
    model = arch.model_type(model_cfg)
    if init_state is not None:
        model.load_state_dict({k: v.float() for k, v in init_state["model"].items()})
    model.to(device).train()
    if rank:  # each crop's level: a stream of its own on every rank (DDP starts all from rank 0's weights)
        torch.manual_seed(train_cfg.seed + 1000 * rank)
    optimizer = make_optimizer(model, train_cfg.lr)
    photos = load_crops(args.crops) if args.crops else load_images(args.data / "train")
    sampler = CropSampler(photos, train_cfg.crop, train_cfg.seed + 1000 * rank,
                          train_cfg.flat_crop_activity, train_cfg.colour_augment)
    step, cpu_seconds, gpu_seconds = 0, 0.0, 0.0
    # Steps and CPU time behind the starting weights, so the record covers the whole chain.
    prior_steps = int(init_state.get("total_steps", init_state.get("step", 0))) if init_state else 0
    prior_seconds = float(init_state.get("total_cpu_hours", 0.0)) * 3600 if init_state else 0.0
    prior_gpu_seconds = float(init_state.get("total_gpu_hours", 0.0)) * 3600 if init_state else 0.0
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])  # moves its state to the parameters' device
        step = state["step"]
        cpu_seconds = state.get("cpu_seconds", 0.0)
        prior_steps = state.get("total_steps", step) - step
        prior_seconds = state.get("total_cpu_hours", cpu_seconds * world / 3600) * 3600 - cpu_seconds * world
        gpu_seconds = state.get("gpu_seconds", 0.0)
        prior_gpu_seconds = state.get("total_gpu_hours", 0.0) * 3600 - gpu_seconds * world
        if rank == 0:
            sampler.rng.bit_generator.state = state["sampler_rng"]
        else:  # other ranks: a fresh stream that depends on the step, so it never repeats rank 0's
            sampler.rng = np.random.default_rng(train_cfg.seed + 1000 * rank + step)
        torch.set_rng_state(state["torch_rng"])
        if rank:
            torch.manual_seed(train_cfg.seed + 1000 * rank + step)
    average = WeightAverage(model, train_cfg.ema_decay) if train_cfg.ema_decay else None
    if average is not None and state and "ema" in state:
        average.load_state_dict(state["ema"])
    balance = LevelBalance(model_cfg.num_levels) if train_cfg.level_balance else None
    if balance is not None and state and "level_balance" in state:
        balance.load_state_dict(state["level_balance"])
    local_sgd = distributed and train_cfg.sync_every > 0
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed and not local_sgd else model
    val_images: list[np.ndarray] = []  # loaded at the first validation: a GPU run may carry no val photos
    lambdas = torch.tensor(model_cfg.lambdas, device=device)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    init_record = {"init": str(args.init)} if args.init and not state else (
        {"init": state["init"]} if state and "init" in state else {})

    def checkpoint_extra() -> dict[str, object]:
        # cpu_seconds: this process's; every process of a distributed run does the same work. On a
        # GPU the steps' wall time counts as GPU time instead (the host's CPU only feeds it).
        gpu_record = {"gpu_seconds": gpu_seconds} if gpu_seconds else {}
        total_gpu_hours = (prior_gpu_seconds + gpu_seconds * world) / 3600
        return {"cpu_seconds": cpu_seconds, **gpu_record, "total_steps": prior_steps + step,
                "total_cpu_hours": round((prior_seconds + cpu_seconds * world) / 3600, 3),
                **({"total_gpu_hours": round(total_gpu_hours, 4)} if total_gpu_hours else {}), **init_record}

    def model_to_measure() -> torch.nn.Module:
        """The weights that validation measures and --save-weights writes: the average, if kept."""
        if average is None:
            return model
        averaged = arch.model_type(model_cfg)
        averaged.load_state_dict({k: v.cpu() for k, v in average.averaged_state(model).items()})
        return averaged

    bar = tqdm(total=train_cfg.steps, initial=step, disable=not is_main or args.no_progress,
               dynamic_ncols=True, smoothing=0.05)
    window: list[tuple[float, float, float]] = []
    stop_at = min(train_cfg.steps, step + args.stop_after) if args.stop_after else train_cfg.steps
    wall_started, steps_started = time.time(), step
    deadline = wall_started + 60 * args.stop_after_minutes if args.stop_after_minutes else None
    on_gpu = device.type != "cpu"
    # On a GPU the crops are cut there, with a stream of their own that depends on the step (so a
    # resumed run draws other crops); the checkpointed host sampler then stays unused.
    device_sampler = (DeviceCropSampler(photos, train_cfg.crop, train_cfg.seed + 1000 * rank + 7919 * (step + 1),
                                        device, train_cfg.flat_crop_activity, train_cfg.colour_augment)
                      if on_gpu or args.device_crops else None)
    while step < stop_at:
        started = time.perf_counter() if on_gpu else time.process_time()
        for group in optimizer.param_groups:
            group["lr"] = train_cfg.lr_at(step) * group["lr_scale"]
        sigma = train_cfg.sigma_at(step)
        for quantizer in (model.quantizer, getattr(model, "hyper_quantizer", None)):
            if quantizer is not None:
                quantizer.sigma = sigma
        if device_sampler is not None:
            x = device_sampler.batch(train_cfg.batch_size)  # N,3,H,W
        else:
            x = torch.from_numpy(sampler.batch(train_cfg.batch_size)).permute(0, 3, 1, 2).float().div_(255.0)
        level = torch.randint(0, model_cfg.num_levels, (x.shape[0],)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            result = net(x, level)  # the models compute quantization and rates in float32
        mse = ((result["x_hat"] - x) ** 2).mean(dim=(1, 2, 3))  # N
        bpp = result["bits"] / (x.shape[2] * x.shape[3])  # N
        if train_cfg.distortion == "ms-ssim":
            distortion = 1 - ms_ssim(result["x_hat"], x, data_range=1.0, size_average=False)  # N
        else:
            distortion = 255 ** 2 * mse
        per_crop = lambdas[level] * distortion + bpp  # N
        loss = per_crop.mean()  # logged unweighted, comparable across runs
        weighted = loss if balance is None else (balance.weights(level) * per_crop).mean()
        optimizer.zero_grad(set_to_none=True)
        weighted.backward()
        if balance is not None:
            balance.update(level, per_crop)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if average is not None:
            average.update()
        step += 1
        psnr = (10 * torch.log10(1.0 / mse.detach().clamp_min(1e-10))).mean().item()  # waits for the GPU
        window.append((loss.item(), bpp.mean().item(), psnr))
        if on_gpu:
            gpu_seconds += time.perf_counter() - started
        else:
            cpu_seconds += time.process_time() - started
        if deadline is not None and past(deadline, step):
            stop_at = step  # checkpoint and leave below
        if local_sgd and (step % train_cfg.sync_every == 0 or step == stop_at):
            average_across_processes(synchronized_tensors(model, optimizer, average))
        if is_main:
            bar.update(1)
            if step % 10 == 0:
                mean = np.mean(window[-50:], axis=0)
                bar.set_postfix(loss=f"{mean[0]:.3f}", bpp=f"{mean[1]:.3f}", psnr=f"{mean[2]:.2f}",
                                sigma=f"{sigma:.2f}")
            if step % 50 == 0:
                mean = np.mean(window, axis=0)
                window.clear()
                append_csv(args.run_dir / "train_log.csv", {
                    "step": step, "loss": round(mean[0], 5), "bpp": round(mean[1], 5),
                    "psnr": round(mean[2], 3), "sigma": round(sigma, 4), "lr": train_cfg.lr_at(step),
                    "steps_per_s": round((step - steps_started) / max(1e-9, time.time() - wall_started), 3),
                    "cpu_hours": round(cpu_seconds / 3600 * world, 4),
                    **({"gpu_hours": round(gpu_seconds / 3600 * world, 4)} if on_gpu else {}),
                    "wall": round(time.time(), 1)})
            checkpoint_now = step % train_cfg.ckpt_every == 0 or step == stop_at
            validate_now = step % train_cfg.val_every == 0 or step == train_cfg.steps
            measured = model_to_measure() if validate_now or (checkpoint_now and args.save_weights) else None
            if checkpoint_now:
                save_checkpoint(ckpt_path, model, optimizer, step, train_cfg, sampler, {
                    **checkpoint_extra(), **({"ema": average.state_dict()} if average is not None else {}),
                    **({"level_balance": balance.state_dict()} if balance is not None else {})})
                if args.save_weights:
                    averaged = {"averaged": f"ema {train_cfg.ema_decay}"} if average is not None else {}
                    save_weights(args.save_weights, measured, {
                        "architecture": arch.name, "step": step, "model_config": model_cfg.to_dict(),
                        "train_config": train_cfg.to_dict(), **checkpoint_extra(), **averaged},
                        torch.float32 if arch.name == "shae-v8" else torch.bfloat16)
            if validate_now:
                levels = sorted({1, model_cfg.num_levels // 2 + 1, model_cfg.num_levels})
                model.cpu()
                val_images = val_images or load_images(args.data / "val")[:VAL_IMAGES]
                with_ms_ssim = train_cfg.distortion == "ms-ssim"
                for r in evaluate(checkpoint_codec(measured), val_images, levels, ms_ssim=with_ms_ssim):
                    append_csv(args.run_dir / "val_log.csv", {
                        "step": step, "quality": r.quality, "bpp_real": round(r.bpp, 5),
                        "bpp_estimate": round(r.bpp_estimate, 5), "psnr": round(r.psnr, 3),
                        **({"ms_ssim": round(r.ms_ssim, 5)} if with_ms_ssim else {})})
                    bar.write(f"step {step} q{r.quality}: {r.bpp:.4f} bpp real "
                              f"({r.bpp_estimate:.4f} est), {r.psnr:.2f} dB")
                model.to(device).train()
    bar.close()
    if distributed:
        # Leave together: the first process would otherwise tear its connections down while the
        # main one still writes the checkpoint, and gloo's threads may then abort the exit (SIGABRT).
        dist.barrier()
        del net  # the DDP wrapper holds the process group; free it before the group goes
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
