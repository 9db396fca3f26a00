"""The training script on tiny generated data: a few steps, resuming, and DDP with 2 processes."""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
TINY = json.dumps({"latent_channels": 6, "num_centers": 5, "center_range": 2.0, "stage4_channels": 8,
                   "stage8_channels": 12, "prior_hidden": 4, "lambdas": [0.01, 0.05, 0.2]})


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 2)):
        (tmp_path / split).mkdir()
        for k in range(count):
            yy, xx = np.mgrid[0:72, 0:96]
            img = np.stack([np.sin(xx / (5 + k)) * 100 + 120, yy * 2.0, rng.normal(128, 20, xx.shape)], -1)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(tmp_path / split / f"{k}.png")
    return tmp_path


def train(run: Path, data: Path, steps: int, *extra: str) -> None:
    from imgcodec.cli import main  # noqa: F401  (package importable without sys.path edits)

    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--run-dir", str(run), "--data", str(data),
           "--steps", str(steps), "--batch-size", "2", "--crop", "32", "--threads", "1",
           "--val-every", "4", "--ckpt-every", "2", "--no-progress", "--model-config", TINY, *extra]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


def test_trains_validates_and_resumes(data_dir, tmp_path):
    run = tmp_path / "run"
    train(run, data_dir, 4)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4
    assert state["model_config"]["latent_channels"] == 6
    with open(run / "val_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {int(r["level"]) for r in rows} == {0, 1, 2}
    for r in rows:  # real coded bits vs the prior's estimate
        assert float(r["bpp_real"]) >= float(r["bpp_estimate"]) * 0.99
    train(run, data_dir, 6)  # resumes from step 4
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 6


def test_resumed_run_equals_uninterrupted_run(data_dir, tmp_path):
    straight, resumed = tmp_path / "a", tmp_path / "b"
    train(straight, data_dir, 4)
    train(resumed, data_dir, 4, "--stop-after", "2")
    assert torch.load(resumed / "checkpoint.pt", weights_only=False)["step"] == 2
    train(resumed, data_dir, 4)
    a = torch.load(straight / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(resumed / "checkpoint.pt", weights_only=False)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_distributed_two_processes(data_dir, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", str(REPO / "scripts" / "train.py"),
           "--run-dir", str(run), "--data", str(data_dir), "--steps", "3", "--batch-size", "2", "--crop", "32",
           "--threads", "2", "--val-every", "100", "--ckpt-every", "3", "--no-progress", "--model-config", TINY]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300, env=env)
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 3


def test_warm_start_grows_a_new_run_and_resumes_it(data_dir, tmp_path):
    base, grown = tmp_path / "base", tmp_path / "grown"
    train(base, data_dir, 2)
    bigger = json.dumps({"latent_channels": 8, "num_centers": 7, "context_clip": 2, "refine_channels": 4,
                         "lambdas": [0.01, 0.05, 0.2, 0.5]})
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--run-dir", str(grown), "--data", str(data_dir),
           "--init", str(base / "checkpoint.pt"), "--model-config", bigger, "--steps", "4", "--stop-after", "2",
           "--batch-size", "2", "--crop", "32", "--threads", "1", "--val-every", "4", "--no-progress",
           "--sigma-start", "3", "--sigma-end", "5", "--ste", "identity", "--new-channel-warmup", "1"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    state = torch.load(grown / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2
    assert state["model_config"]["latent_channels"] == 8 and state["model_config"]["context_clip"] == 2
    assert state["model_config"]["stage4_channels"] == 8  # the rest comes from the initial model
    assert list(state["model_config"]["lambdas"]) == [0.01, 0.05, 0.2, 0.5]  # one level more
    extra = state["train_config"]["extra"]
    assert extra == {"init": str(base / "checkpoint.pt"), "new_channels_from": 6, "new_channel_warmup": 1,
                     "hold_new_gains": False}
    # Resuming keeps the run's own sigma schedule and gradient mode without repeating the flags.
    subprocess.run(cmd[:cmd.index("--sigma-start")], check=True, capture_output=True, timeout=300)
    state = torch.load(grown / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4
    assert (state["train_config"]["sigma_start"], state["train_config"]["sigma_end"]) == (3.0, 5.0)
    assert state["train_config"]["ste"] == "identity"


def test_hold_new_gains_keeps_only_the_new_channels_gains(data_dir, tmp_path):
    from imgcodec.training import load_model
    from imgcodec.warm_start import grow

    base, grown = tmp_path / "base", tmp_path / "grown"
    train(base, data_dir, 2)
    bigger = {"latent_channels": 9, "lambdas": [0.01, 0.05, 0.2, 0.5]}
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--run-dir", str(grown), "--data", str(data_dir),
           "--init", str(base / "checkpoint.pt"), "--model-config", json.dumps(bigger), "--steps", "3",
           "--batch-size", "2", "--crop", "32", "--threads", "1", "--val-every", "10", "--no-progress",
           "--lr", "1e-2", "--hold-new-gains"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    state = torch.load(grown / "checkpoint.pt", weights_only=False)
    assert state["train_config"]["extra"]["hold_new_gains"] is True
    old, _ = load_model(base / "checkpoint.pt")
    start = grow(old, old.cfg.__class__.from_dict({**old.cfg.to_dict(), **bigger}), seed=0)
    for name in ("log_gain", "log_inv_gain"):
        before, after = getattr(start, name).detach(), state["model"][name]  # levels,C
        torch.testing.assert_close(after[:, 6:], before[:, 6:], rtol=0, atol=0)  # held
        assert (after[:, :6] - before[:, :6]).abs().max() > 1e-3  # the old channels' gains trained


def test_export_records_the_warm_start_chain(data_dir, tmp_path):
    """export_model.py on a grown run: shipped files, validation through real files, full cost."""
    base, grown, zoo = tmp_path / "base", tmp_path / "grown", tmp_path / "zoo"
    train(base, data_dir, 2)
    train(grown, data_dir, 2, "--init", str(base / "checkpoint.pt"))
    env = {**os.environ, "SHAEC_MODELS_DIR": str(zoo), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(REPO / "scripts" / "export_model.py"), str(grown / "checkpoint.pt"),
                    "--name", "tiny-v2", "--data", str(data_dir), "--train-command", "test",
                    "--drop-channels-below", "0.05", "--save-checkpoint", str(tmp_path / "slim.pt")],
                   check=True, capture_output=True, timeout=300, env=env)
    entry = json.loads((zoo / "manifest.json").read_text())["models"]["tiny-v2"]
    assert entry["warm_start_from"] == str(base / "checkpoint.pt")
    assert entry["warm_start_steps"] == 2 and entry["total_steps"] == 4
    seconds = [torch.load(run / "checkpoint.pt", weights_only=False)["cpu_seconds"] for run in (base, grown)]
    assert min(seconds) > 0
    assert entry["total_cpu_hours"] == round(sum(seconds) / 3600, 3)
    # The slimmed model that was exported is the one saved, and the manifest says what went.
    slim = torch.load(tmp_path / "slim.pt", weights_only=False)
    dropped = slim["dropped_channels"]
    assert entry.get("dropped_channels", {"channels": []})["channels"] == dropped
    assert slim["model_config"]["latent_channels"] == 6 - len(dropped)
    with np.load(zoo / "tiny-v2" / "prior.npz") as npz:
        assert npz["gains"].shape == (3, 6 - len(dropped))
    levels = entry["validation"]["levels"]
    assert [row["quality"] for row in levels] == [1, 2, 3]
    for row in levels:
        assert row["bpp"] > row["bpp_estimate"] > 0  # real file bytes include the container
    assert {p.name for p in (zoo / "tiny-v2").iterdir()} >= {"encoder.onnx", "decoder.onnx", "prior.npz",
                                                           "model.json", "val_log.csv", "validation.csv"}
    # A run grown from the exported checkpoint counts the whole chain back to the first run.
    third = tmp_path / "third"
    train(third, data_dir, 2, "--init", str(tmp_path / "slim.pt"))
    subprocess.run([sys.executable, str(REPO / "scripts" / "export_model.py"), str(third / "checkpoint.pt"),
                    "--name", "tiny-v3", "--data", str(data_dir), "--train-command", "test",
                    "--keep-levels", "1", "3", "--tune-rounding"],
                   check=True, capture_output=True, timeout=300, env=env)
    entry = json.loads((zoo / "manifest.json").read_text())["models"]["tiny-v3"]
    assert entry["kept_levels"] == [1, 3]  # ... shipped as qualities 1 and 2
    tuned = json.loads((zoo / "tiny-v3" / "model.json").read_text())["rd_rounding"]
    assert len(tuned["tau"]) == 2 and tuned["taus_tried"][0] == 0.0
    assert entry["validation"]["rounding"] == ("rd" if any(tuned["tau"]) else "nearest")
    assert [row["quality"] for row in entry["validation"]["levels"]] == [1, 2]
    with np.load(zoo / "tiny-v3" / "prior.npz") as npz:
        assert npz["gains"].shape[0] == 2
    assert entry["warm_start_chain"] == [str(tmp_path / "slim.pt"), str(base / "checkpoint.pt")]
    assert entry["warm_start_steps"] == 2 and entry["total_steps"] == 6
    seconds.append(torch.load(third / "checkpoint.pt", weights_only=False)["cpu_seconds"])
    assert entry["total_cpu_hours"] == round(sum(seconds) / 3600, 3)
