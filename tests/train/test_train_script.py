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

REPO = Path(__file__).resolve().parents[2]
TINY = json.dumps({"latent_channels": 6, "num_centers": 5, "center_range": 2.0, "stage4_channels": 8,
                   "stage8_channels": 12, "prior_hidden": 4, "context_clip": 1, "synthesis_blocks8": 1,
                   "synthesis_blocks4": 1, "analysis_blocks8": 1, "analysis_blocks4": 1, "refine_channels": 4,
                   "lambdas": [0.01, 0.05, 0.2]})


def _write_photos(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 2)):
        (folder / split).mkdir()
        for k in range(count):
            yy, xx = np.mgrid[0:72, 0:96]
            img = np.stack([np.sin(xx / (5 + k)) * 100 + 120, yy * 2.0, rng.normal(128, 20, xx.shape)], -1)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / split / f"{k}.png")
    return folder


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return _write_photos(tmp_path)


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data folder, run folder) of one training step, shared by tests that only read it."""
    data = _write_photos(tmp_path_factory.mktemp("photos"))
    run = tmp_path_factory.mktemp("runs") / "run"
    train(run, data, 1)
    return data, run


def train(run: Path, data: Path, steps: int, *extra: str) -> None:
    from imgcodec.cli import main  # noqa: F401  (package importable without sys.path edits)

    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--run-dir", str(run), "--data", str(data),
           "--steps", str(steps), "--batch-size", "2", "--crop", "32", "--threads", "1",
           "--val-every", "4", "--ckpt-every", "2", "--no-progress",
           *([] if "--init" in extra else ["--model-config", TINY]), *extra]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


def test_trains_validates_and_resumes(data_dir, tmp_path):
    run = tmp_path / "run"
    train(run, data_dir, 4)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4
    assert state["model_config"]["latent_channels"] == 6
    with open(run / "val_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {int(r["quality"]) for r in rows} == {1, 2, 3}
    for r in rows:  # real coded bits vs the prior's estimate
        assert float(r["bpp_real"]) >= float(r["bpp_estimate"]) * 0.99
    train(run, data_dir, 6)  # resumes from step 4
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 6


@pytest.mark.slow  # two short training runs, about 14 s; CI runs it with the slow tests
def test_level_balance_and_colour_augment_are_recorded_and_resumed(data_dir, tmp_path):
    """--level-balance keeps each level's running loss in the checkpoint; a resumed run goes on
    from it (and keeps both options, which set what the run optimizes)."""
    run = tmp_path / "run"
    train(run, data_dir, 2, "--level-balance", "--colour-augment")
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["train_config"]["level_balance"] is True and state["train_config"]["colour_augment"] is True
    running = state["level_balance"]["running"]
    assert running.shape == (3,) and int((~torch.isnan(running)).sum()) >= 1
    train(run, data_dir, 4)
    resumed = torch.load(run / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 4 and resumed["train_config"]["level_balance"] is True
    assert resumed["train_config"]["colour_augment"] is True
    seen = ~torch.isnan(running)
    assert not torch.equal(resumed["level_balance"]["running"][seen], running[seen]) or \
        int((~torch.isnan(resumed["level_balance"]["running"])).sum()) > int(seen.sum())


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_distributed_two_processes(data_dir, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", str(REPO / "scripts" / "train.py"),
           "--run-dir", str(run), "--data", str(data_dir), "--steps", "3", "--batch-size", "2", "--crop", "32",
           "--threads", "2", "--val-every", "100", "--ckpt-every", "3", "--no-progress", "--model-config", TINY]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300, env=env)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 3
    # the record counts both processes' CPU time (cpu_seconds is one process's)
    assert state["total_cpu_hours"] == round(state["cpu_seconds"] * 2 / 3600, 3)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_local_sgd_run_of_two_processes(data_dir, tmp_path):
    """--sync-every: no DDP wrapper, the weights averaged every 2 steps; the run checkpoints,
    records the option and resumes with it."""
    run = tmp_path / "local"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", str(REPO / "scripts" / "train.py"),
           "--run-dir", str(run), "--data", str(data_dir), "--steps", "4", "--batch-size", "1", "--crop", "32",
           "--threads", "2", "--val-every", "100", "--ckpt-every", "2", "--sync-every", "2", "--no-progress",
           "--model-config", TINY]
    subprocess.run(cmd + ["--stop-after", "2"], check=True, capture_output=True, timeout=300, env=env)
    subprocess.run(cmd, check=True, capture_output=True, timeout=300, env=env)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4 and state["train_config"]["sync_every"] == 2
    assert state["total_cpu_hours"] == round(state["cpu_seconds"] * 2 / 3600, 3)


@pytest.mark.slow  # a two-process run, about 10 s
def test_distributed_processes_leave_together_at_the_time_limit(data_dir, tmp_path):
    """--stop-after-minutes in a distributed run: the processes agree on the step to stop at
    (one leaving alone would hang the other), here the first check, step 10."""
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", str(REPO / "scripts" / "train.py"),
           "--run-dir", str(run), "--data", str(data_dir), "--steps", "1000", "--batch-size", "1", "--crop", "32",
           "--threads", "2", "--val-every", "1000", "--ckpt-every", "1000", "--no-progress", "--model-config", TINY,
           "--stop-after-minutes", "0.0001"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300, env=env)
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 10


def test_unknown_model_config_key_is_an_error(data_dir, tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--run-dir", str(tmp_path / "run"), "--data",
           str(data_dir), "--steps", "1", "--no-progress", "--model-config", '{"latent_chanels": 8}']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "unknown model config key(s): latent_chanels" in proc.stderr


@pytest.mark.slow
def test_export_of_a_continued_run(data_dir, tmp_path):
    """export_model.py on a run continued with --init: shipped files, validation through real
    files, and the cost of the whole chain; the exported weights continue again."""
    base, cont, zoo = tmp_path / "base", tmp_path / "cont", tmp_path / "zoo"
    train(base, data_dir, 2)
    train(cont, data_dir, 2, "--init", str(base / "checkpoint.pt"))
    env = {**os.environ, "SHAEC_MODELS_DIR": str(zoo), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(REPO / "scripts" / "export_model.py"), str(cont / "checkpoint.pt"),
                    "--name", "tiny-v2", "--data", str(data_dir), "--train-command", "test", "--tune-rounding",
                    "--save-checkpoint", str(tmp_path / "slim.pt")],
                   check=True, capture_output=True, timeout=300, env=env, cwd=tmp_path)
    entry = json.loads((zoo / "manifest.json").read_text())["models"]["tiny-v2"]
    assert entry["init"] == str(base / "checkpoint.pt")
    assert entry["total_steps"] == 4
    seconds = [torch.load(run / "checkpoint.pt", weights_only=False)["cpu_seconds"] for run in (base, cont)]
    assert min(seconds) > 0
    assert abs(entry["total_cpu_hours"] - sum(seconds) / 3600) < 1e-3
    levels = entry["validation"]["levels"]
    assert [row["quality"] for row in levels] == [1, 2, 3]
    for row in levels:
        assert row["bpp"] > row["bpp_estimate"] > 0  # real file bytes include the container
    assert {p.name for p in (zoo / "tiny-v2").iterdir()} == {"encoder.onnx", "decoder.onnx", "prior.npz", "model.json"}
    assert (tmp_path / "docs" / "training-logs" / "tiny-v2" / "validation.csv").exists()
    tuned = json.loads((zoo / "tiny-v2" / "model.json").read_text())["rd_rounding"]
    assert len(tuned["tau"]) == 3 and tuned["taus_tried"][0] == 0.0
    assert entry["validation"]["rounding"] == ("rd" if any(tuned["tau"]) else "nearest")
    train(tmp_path / "third", data_dir, 2, "--init", str(tmp_path / "slim.pt"))
    assert torch.load(tmp_path / "third" / "checkpoint.pt", weights_only=False)["step"] == 2
    subprocess.run([sys.executable, str(REPO / "scripts" / "export_model.py"), str(tmp_path / "third" / "checkpoint.pt"),
                    "--name", "tiny-v2-ssim", "--tune", "ssim", "--no-eval"],
                   check=True, capture_output=True, timeout=300, env=env, cwd=tmp_path)
    manifest = json.loads((zoo / "manifest.json").read_text())
    assert manifest["default"] == "tiny-v2"  # a tune never replaces the default it tunes
    assert {k: manifest["models"]["tiny-v2-ssim"][k] for k in ("tune", "tuned_from")} == {
        "tune": "ssim", "tuned_from": "tiny-v2"}


@pytest.fixture
def script():
    """scripts/train.py as a module, to call main() in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", REPO / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bf16_refused_on_a_cpu_without_native_bf16(script, data_dir, tmp_path, monkeypatch):
    """Autocast without AVX512-BF16 is 16-26x slower than float32: the script says so and stops."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    with pytest.raises(SystemExit, match="no native BF16"):
        script.main(["--run-dir", str(tmp_path / "run"), "--data", str(data_dir), "--steps", "1", "--bf16",
                     "--model-config", TINY])
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a script run of several seconds; CI runs it with the slow tests
def test_a_resumed_run_keeps_its_recorded_schedule(script, data_dir, tmp_path):
    """Resuming without the schedule's options must not fall back to the defaults (lr, sigma);
    giving one with another value is refused; --steps may lengthen the run."""
    run = tmp_path / "run"
    train(run, data_dir, 2, "--lr", "3e-4", "--sigma-start", "2", "--sigma-end", "4")
    script.main(["--run-dir", str(run), "--data", str(data_dir), "--steps", "3", "--no-progress"])
    recorded = torch.load(run / "checkpoint.pt", weights_only=False)
    assert recorded["step"] == 3
    config = recorded["train_config"]
    assert (config["steps"], config["lr"], config["sigma_start"], config["sigma_end"]) == (3, 3e-4, 2.0, 4.0)
    assert (config["crop"], config["batch_size"], config["threads"]) == (32, 2, 1)
    with pytest.raises(SystemExit, match="started with --lr 0.0003"):
        script.main(["--run-dir", str(run), "--data", str(data_dir), "--steps", "4", "--lr", "1e-4"])


@pytest.mark.parametrize("extra, message", [
    (["--distortion", "ms-ssim", "--crop", "128"], "needs --crop 161"),
    (["--lambdas", "[1, 2]"], "has 3 levels, got 2"),
    (["--lambdas", "[1, -2, 3]"], "lambdas must be positive"),
    (["--lambdas", "fast"], "JSON list"),
])
def test_fine_tune_options_are_checked(script, one_step_run, tmp_path, extra, message):
    data, run = one_step_run
    with pytest.raises(SystemExit, match=message):
        script.main(["--run-dir", str(tmp_path / "ft"), "--data", str(data), "--steps", "1",
                     "--init", str(run / "checkpoint.pt"), *extra])


@pytest.mark.slow  # about 10 s of training steps; CI runs it with the slow tests
def test_ms_ssim_fine_tune_records_its_loss_and_lambdas(script, data_dir, tmp_path):
    """CompressAI's recipe: start from an MSE model, train lambda * (1 - MS-SSIM) + bpp; a resume
    must keep the distortion the run started with."""
    big = tmp_path / "big"
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        (big / split).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (176, 176, 3), dtype=np.uint8)).save(big / split / "0.png")
    run, ft = tmp_path / "run", tmp_path / "ft"
    train(run, data_dir, 1)
    train(ft, big, 1, "--init", str(run / "checkpoint.pt"), "--distortion", "ms-ssim", "--crop", "168",
          "--lambdas", "[3, 30, 300]")
    state = torch.load(ft / "checkpoint.pt", weights_only=False)
    assert state["train_config"]["distortion"] == "ms-ssim"
    assert tuple(state["model_config"]["lambdas"]) == (3, 30, 300)
    with open(ft / "val_log.csv") as fh:
        assert all(0 < float(r["ms_ssim"]) <= 1 for r in csv.DictReader(fh))
    with pytest.raises(SystemExit, match="resume it with --distortion ms-ssim"):
        script.main(["--run-dir", str(ft), "--data", str(big), "--steps", "2", "--distortion", "mse"])


@pytest.mark.slow  # a script run of several seconds; CI runs it with the slow tests
def test_train_speed_times_the_chosen_architecture_and_modes():
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "train_speed.py"), "--arch", "shae-v9",
                          "--modes", "float32", "--steps", "2", "--batch", "1", "--crop", "64", "--threads", "1",
                          "--model-config", '{"channels": 16, "num_centers": 83}'],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("| shae")]
    assert "| architecture | float32 |" in out and len(rows) == 1
    assert rows[0].startswith("| shae-v9 | ") and float(rows[0].split("|")[2].strip().rstrip(" s")) > 0


@pytest.mark.slow  # a script run of several seconds; CI runs it with the slow tests
def test_time_limit_leaves_with_a_checkpoint_and_weights(data_dir, tmp_path):
    """--stop-after-minutes ends a run early (a rented GPU's time), saving where it stopped."""
    run = tmp_path / "run"
    train(run, data_dir, 1000, "--stop-after-minutes", "0.0001", "--save-weights", str(tmp_path / "w.pt"))
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 1
    assert torch.load(tmp_path / "w.pt", weights_only=False)["step"] == 1


def test_weights_keep_the_gpu_time(tmp_path):
    """A GPU run's time travels with its weights to the next run's --init."""
    from imgcodec.train.training import save_weights

    save_weights(tmp_path / "w.pt", torch.nn.Linear(2, 2), {"step": 3, "gpu_seconds": 7.5,
                                                           "total_gpu_hours": 0.25}, torch.bfloat16)
    state = torch.load(tmp_path / "w.pt", weights_only=False)
    assert (state["gpu_seconds"], state["total_gpu_hours"]) == (7.5, 0.25)


def test_crops_cut_on_the_device_train(data_dir, tmp_path):
    """The GPU's crop path (DeviceCropSampler), run on the CPU device: a run trains through it."""
    run = tmp_path / "run"
    train(run, data_dir, 2, "--device-crops", "--colour-augment", "--flat-crop-activity", "2")
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2 and state["train_config"]["colour_augment"]
