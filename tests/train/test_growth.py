"""Growing a shae-v9 checkpoint's latent centers keeps the model, its outputs and its optimizer."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from imgcodec.config import ShaeV9Config
from imgcodec.train.averaging import WeightAverage
from imgcodec.train.growth import CENTERS_KEY, detail_step, grow_detail_stage, grow_latent_centers, outer_centers
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.training import load_model, make_optimizer



def _checkpoint(config: dict) -> dict:
    torch.manual_seed(5)
    model = ShaeV9(ShaeV9Config.from_dict(config))
    optimizer = make_optimizer(model, 1e-3)
    x = torch.rand(2, 3, 64, 64)
    out = model(x, torch.tensor([0, 1]))
    (out["bits"].mean() / 1000 + ((out["x_hat"] - x) ** 2).mean()).backward()
    optimizer.step()
    average = WeightAverage(model, 0.5)
    return {"architecture": "shae-v9", "model_config": model.cfg.to_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "step": 1, "ema": average.state_dict()}


def test_outer_centers_extend_both_sides_at_the_spacing() -> None:
    grown = outer_centers(torch.tensor([-1.0, 0.0, 1.5]), 2, 2.0)
    assert grown.tolist() == [-5.0, -3.0, -1.0, 0.0, 1.5, 3.5, 5.5]
    with pytest.raises(ValueError):
        outer_centers(torch.zeros(3), 0, 1.0)


def test_grown_checkpoint_decodes_the_same_and_keeps_adam_moments(tiny_v9_config: dict) -> None:
    state = _checkpoint(tiny_v9_config)
    grown = grow_latent_centers(state, per_side=3, spacing=2.0)
    assert grown["model_config"]["num_centers"] == tiny_v9_config["num_centers"] + 6
    old, new = ShaeV9(ShaeV9Config.from_dict(tiny_v9_config)), ShaeV9(ShaeV9Config.from_dict(grown["model_config"]))
    old.load_state_dict(state["model"])
    new.load_state_dict(grown["model"])
    old.eval(), new.eval()
    # latents inside the old centers' range decode exactly as before
    y = torch.randn(1, 12, 4, 4).clamp(-3, 3)
    def hard_values(model: ShaeV9, values: torch.Tensor) -> torch.Tensor:
        return model.quantizer.centers.detach()[model.quantizer.hard(values)]

    assert torch.equal(hard_values(old, y), hard_values(new, y))
    # and one beyond it now reaches a new center instead of being clipped
    far = torch.full((1, 12, 4, 4), float(old.quantizer.centers.detach().max()) + 2.0)
    assert torch.all(hard_values(new, far) > hard_values(old, far))
    optimizer = make_optimizer(new, 1e-3)
    optimizer.load_state_dict(grown["optimizer"])
    moments = optimizer.state[new.quantizer.centers]["exp_avg"]
    assert moments.shape == (tiny_v9_config["num_centers"] + 6,) and torch.all(moments[:3] == 0)
    saved = make_optimizer(old, 1e-3)
    saved.load_state_dict(state["optimizer"])
    assert torch.equal(moments[3:-3], saved.state[old.quantizer.centers]["exp_avg"])
    assert torch.equal(optimizer.state[new.synthesis[0].weight]["exp_avg_sq"],
                       saved.state[old.synthesis[0].weight]["exp_avg_sq"])
    average = WeightAverage(new, 0.5)
    average.load_state_dict(grown["ema"])  # the grown average fits the grown model
    assert torch.equal(average.averaged_state(new)[CENTERS_KEY], new.quantizer.centers.detach())
    out = new(torch.rand(1, 3, 64, 64), torch.tensor([1]))
    out["bits"].sum().backward()
    optimizer.step()  # the grown state drives a step


def test_only_shae_v9_grows() -> None:
    with pytest.raises(ValueError, match="shae-v9"):
        grow_latent_centers({"architecture": "shae-v8", "model_config": {}, "model": {}}, 1, 1.0)


@pytest.mark.slow  # a subprocess that imports torch: seconds
def test_grow_centers_script_writes_a_grown_checkpoint_and_keeps_an_existing_one(tmp_path: Path, tiny_v9_config: dict) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "grow_centers.py"
    torch.save(_checkpoint(tiny_v9_config), tmp_path / "a.pt")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "a.pt"), str(tmp_path / "b.pt"),
                           "--per-side", "2", "--spacing", "1.5"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "9 -> 13 latent centers" in done.stdout
    assert torch.load(tmp_path / "b.pt", weights_only=False)["model_config"]["num_centers"] == 13
    again = subprocess.run([sys.executable, str(script), str(tmp_path / "a.pt"), str(tmp_path / "b.pt")],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "exists" in again.stderr


def test_center_clipping_script_reports_each_level(tmp_path: Path, photo_folder: Path, tiny_v9_config: dict) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "center_clipping.py"
    torch.save(_checkpoint(tiny_v9_config), tmp_path / "a.pt")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "a.pt"), "--data", str(photo_folder),
                           "--split", "val", "--images", "1", "--crop", "64", "--levels", "1", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [int(r[0]) for r in rows[:2]] == [1, 2] and rows[2][0] == "side"
    carrying = done.stdout.splitlines()[-1]
    assert carrying.startswith("side channels carrying information")
    in_use, of = int(carrying.split(": ")[1].split()[0]), int(carrying.split(" of ")[1].split(";")[0])
    assert 0 <= in_use <= of == tiny_v9_config["hyper_channels"]
    for _, share, largest, clipped, unclipped, cost, unquantized, live, busy in rows[:2]:
        assert 0 <= float(share) <= 100 and float(largest) >= 0
        assert abs(float(unclipped) - float(clipped) - float(cost)) < 0.002
        assert float(unquantized) > 0 and 0 <= int(busy) <= int(live) <= tiny_v9_config["latent_channels"]


def _crops(count: int = 4, size: int = 64) -> list:
    rng = np.random.default_rng(1)
    smooth = np.kron(rng.integers(0, 256, (count, size // 8, size // 8, 3)), np.ones((1, 8, 8, 1)))
    return [np.clip(c + rng.normal(0, 12, c.shape), 0, 255).astype(np.uint8) for c in smooth]


def test_detail_step_follows_the_lambda() -> None:
    assert detail_step(0.4) == pytest.approx(0.0316, abs=1e-4)
    assert detail_step(0.1) == pytest.approx(2 * detail_step(0.4))  # a quarter of the lambda, twice the step


def test_residual_stage_keeps_the_first_stage_and_lowers_the_error(tiny_v9_config: dict) -> None:
    state = _checkpoint(tiny_v9_config)
    crops = _crops()
    grown, measured = grow_detail_stage(state, 8, crops)
    cfg = ShaeV9Config.from_dict(grown["model_config"])
    assert (cfg.latent_channels, cfg.detail_channels, cfg.groups[-1]) == (20, 8, 8)
    assert "optimizer" not in grown and "ema" not in grown  # a new run starts from it with --init
    old, new = ShaeV9(ShaeV9Config.from_dict(tiny_v9_config)), ShaeV9(cfg)
    old.load_state_dict(state["model"])
    new.load_state_dict(grown["model"])
    x = torch.stack([torch.from_numpy(c).permute(2, 0, 1) for c in crops]).float() / 255
    for level in range(cfg.num_levels):
        y_old, y_new = old.latent(x, level), new.latent(x, level)
        assert torch.equal(y_new[:, :12], y_old)  # the first stage codes what it coded
        with torch.no_grad():  # a precomputed analysis (export's calibration) gives the same latent
            assert torch.equal(new.latent(x, level, new.analysis(x - 0.5).float()), y_new)
        with torch.no_grad():  # and the side latent reads the new channels through zeros
            assert torch.allclose(new.hyper_analysis(y_new), old.hyper_analysis(y_old), atol=1e-6)
    basis = new.detail_analysis.weight.detach().reshape(8, -1)
    assert torch.allclose(basis @ basis.T, torch.eye(8), atol=1e-5)
    assert torch.equal(new.detail_synthesis.weight, new.detail_analysis.weight)
    assert all(after > before for before, after in zip(measured.psnr_before, measured.psnr_after))
    assert 0 < measured.nonzero_share[-1] <= 1
    assert measured.bpp_after[-1] > measured.bpp_before[-1] > 0  # the new symbols cost bits
    with pytest.raises(ValueError, match="already"):
        grow_detail_stage(grown, 8, crops)


def test_residual_stage_trains_and_codes_real_bytes(tiny_v9_config: dict) -> None:
    grown, _ = grow_detail_stage(_checkpoint(tiny_v9_config), 8, _crops())
    model = ShaeV9(ShaeV9Config.from_dict(grown["model_config"]))
    model.load_state_dict(grown["model"])
    x = torch.from_numpy(_crops(1)[0]).permute(2, 0, 1)[None].float() / 255
    out = model(x.repeat(2, 1, 1, 1), torch.tensor([0, 1]))
    (out["bits"].sum() / 1000 + ((out["x_hat"] - x) ** 2).mean()).backward()
    assert model.detail_analysis.weight.grad.abs().sum() > 0 and model.detail_synthesis.weight.grad.abs().sum() > 0
    tables = model.frozen_tables()
    model.eval()
    payload = model.compress(x, 1, tables)
    decoded = model.decompress(payload, 1, 64, 64, tables)
    centers = model.quantizer.centers.detach().sort().values
    expected = model.reconstruct(centers[model.quantizer.symbols(model.latent(x, 1))]
                                 * model.log_inv_gain[1].exp()[None, :, None, None])
    assert torch.allclose(decoded, expected, atol=1e-6)


def test_detail_channels_must_be_the_last_group(tiny_v9_config: dict) -> None:
    with pytest.raises(ValueError, match="detail_channels"):
        ShaeV9Config.from_dict({**tiny_v9_config, "detail_channels": 4})  # the last group has 6
    assert ShaeV9Config.from_dict({**tiny_v9_config, "detail_channels": 6}).transform_channels == 6


@pytest.mark.slow  # a subprocess that imports torch: seconds
def test_grow_detail_script_writes_a_model_that_train_can_start_from(tmp_path: Path, photo_folder: Path,
                                                                      tiny_v9_config: dict) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "grow_detail.py"
    torch.save(_checkpoint(tiny_v9_config), tmp_path / "a.pt")
    command = [sys.executable, str(script), str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--channels", "8",
               "--data", str(photo_folder), "--crops", "2", "--crop", "64", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [int(r[0]) for r in rows] == [1, 2]
    assert all(float(after) > float(before) and float(rate_after) > 0 for _, _, before, rate_after, after, _ in rows)
    model, _ = load_model(tmp_path / "b.pt")
    assert model.cfg.detail_channels == 8
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "exists" in again.stderr
