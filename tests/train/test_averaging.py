"""The exponential weight average: its arithmetic, its checkpointing, and train.py's use of it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from imgcodec.train.averaging import WeightAverage

REPO = Path(__file__).resolve().parents[2]


def test_average_follows_the_weights_geometrically_and_skips_integer_buffers() -> None:
    model = nn.BatchNorm1d(3)  # float parameters and buffers, and an integer buffer
    average = WeightAverage(model, decay=0.75)
    with torch.no_grad():
        model.weight.fill_(2.0)  # from 1
        model.num_batches_tracked.fill_(7)
    average.update()
    average.update()
    state = average.averaged_state(model)
    # 1 -> 0.75 * 1 + 0.25 * 2 = 1.25 -> 0.75 * 1.25 + 0.25 * 2 = 1.4375
    assert torch.allclose(state["weight"], torch.full((3,), 1.4375))
    assert torch.equal(state["bias"], torch.zeros(3))
    assert int(state["num_batches_tracked"]) == 7 and "num_batches_tracked" not in average.state_dict()
    restored = WeightAverage(model, decay=0.75)
    restored.load_state_dict(average.state_dict())
    assert torch.equal(restored.averaged_state(model)["weight"], state["weight"])
    with pytest.raises(ValueError, match="does not hold"):
        WeightAverage(nn.Linear(2, 2), 0.5).load_state_dict(average.state_dict())
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, 1.0)


@pytest.mark.slow  # about 10 s of training steps; CI runs it with the slow tests
def test_train_script_validates_and_saves_the_average_and_resumes_it(photo_folder: Path, tiny_v9_config: dict) -> None:
    tmp_path = photo_folder
    run = [sys.executable, str(REPO / "scripts" / "train.py"), "--arch", "shae-v9", "--run-dir", str(tmp_path / "a"),
           "--model-config", json.dumps(tiny_v9_config), "--data", str(tmp_path), "--batch-size", "2", "--crop", "64",
           "--threads", "1", "--val-every", "2", "--ckpt-every", "2", "--no-progress", "--ema-decay", "0.5",
           "--save-weights", str(tmp_path / "w.pt")]
    subprocess.run([*run, "--steps", "2"], check=True, capture_output=True, timeout=300)
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    weights = torch.load(tmp_path / "w.pt", weights_only=False)
    assert weights["averaged"] == "ema 0.5" and state["train_config"]["ema_decay"] == 0.5
    name = "synthesis.0.weight"
    assert torch.allclose(weights["model"][name].float(), state["ema"][name], atol=1e-2, rtol=1e-2)
    assert not torch.equal(state["ema"][name], state["model"][name])  # the average lags the weights
    done = subprocess.run([*run, "--steps", "4", "--ema-decay", "0.9"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr  # a resumed run may change the decay
    resumed = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 4 and resumed["train_config"]["ema_decay"] == 0.9
    assert (tmp_path / "a" / "val_log.csv").read_text().count("\n") == 1 + 2 * 2  # q1, q2 at steps 2 and 4
