"""shae-v9's training model: shapes, a proper rate term, and training it through scripts/train.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgcodec.config import ShaeV9Config
from imgcodec.train.shae_v9 import ShaeV9, gaussian_bin_log2

REPO = Path(__file__).resolve().parents[2]
TINY = {"channels": 8, "latent_channels": 12, "hyper_channels": 4, "num_centers": 9, "hyper_num_centers": 5,
        "groups": [2, 4, 6], "param_features": 8, "context_features": 4, "lambdas": [0.01, 0.1]}


def test_bins_of_the_centers_hold_all_probability() -> None:
    centers = torch.tensor([-3.0, -1.2, 0.0, 0.7, 2.5])
    mean = torch.tensor([[[[-10.0, 0.3, 25.0]]]])  # far below, inside, far above the centers
    scale = torch.tensor([[[[0.5, 0.2, 0.11]]]])
    probs = 2 ** gaussian_bin_log2(centers, mean, scale)  # 1,1,1,3,5
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 1, 1, 3), atol=1e-5, rtol=0)
    assert probs[0, 0, 0, 0, 0] > 0.99 and probs[0, 0, 0, 2, -1] > 0.99
    assert probs[0, 0, 0, 1].argmax() == 2  # the bin around 0.3 is the center 0's


def test_forward_shapes_rate_and_gradients() -> None:
    torch.manual_seed(0)
    model = ShaeV9(ShaeV9Config.from_dict(TINY))
    x = torch.rand(2, 3, 64, 128)
    out = model(x, torch.tensor([0, 1]))
    assert out["x_hat"].shape == x.shape
    assert torch.all(out["bits"] > out["side_bits"]) and torch.all(out["side_bits"] > 0)
    (out["bits"].sum() + ((out["x_hat"] - x) ** 2).mean()).backward()
    for name in ("analysis.0.weight", "hyper_analysis.0.weight", "hyper_logits", "quantizer.centers",
                 "parameters_of_group.2.context.weight", "log_gain"):
        assert model.get_parameter(name).grad is not None and model.get_parameter(name).grad.abs().sum() > 0, name


def test_config_refuses_unknown_keys_and_bad_groups() -> None:
    with pytest.raises(ValueError, match="unknown shae-v9 config key"):
        ShaeV9Config.from_dict({"chanels": 3})
    with pytest.raises(ValueError, match="sum to latent_channels"):
        ShaeV9Config.from_dict({**TINY, "groups": [2, 2]})


def test_train_script_trains_saves_small_weights_and_continues(tmp_path: Path) -> None:
    for split, count in (("train", 2), ("val", 1)):
        (tmp_path / split).mkdir()
        for k in range(count):
            rng = np.random.default_rng(k)
            Image.fromarray(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)).save(tmp_path / split / f"{k}.png")
    common = ["--data", str(tmp_path), "--batch-size", "2", "--crop", "64", "--threads", "1", "--val-every", "2",
              "--ckpt-every", "2", "--no-progress"]
    subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--arch", "shae-v9", "--run-dir",
                    str(tmp_path / "a"), "--steps", "2", "--model-config", json.dumps(TINY),
                    "--save-weights", str(tmp_path / "w.pt"), *common], check=True, capture_output=True, timeout=300)
    weights = torch.load(tmp_path / "w.pt", weights_only=False)
    assert weights["architecture"] == "shae-v9" and weights["step"] == 2
    assert all(v.dtype == torch.bfloat16 for v in weights["model"].values() if v.is_floating_point())
    log = (tmp_path / "a" / "val_log.csv").read_text().splitlines()
    assert log[0] == "step,quality,bpp_real,bpp_estimate,psnr" and len(log) == 3  # q1 and q2 at step 2
    subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--run-dir", str(tmp_path / "b"),
                    "--init", str(tmp_path / "w.pt"), "--steps", "2", *common],
                   check=True, capture_output=True, timeout=300)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert state["architecture"] == "shae-v9" and state["total_steps"] == 4
