"""Narrowing shae-v9's 1/2- or 1/4-resolution maps keeps the rest of the model and refits the cut layers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from imgcodec.config import ShaeV9Config
from imgcodec.train.pruning import channel_scores, fit_cut_layers, prune_channels
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.train.training import load_model


def _state(config: dict) -> dict:
    torch.manual_seed(5)
    model = ShaeV9(ShaeV9Config.from_dict(config))
    return {"architecture": "shae-v9", "model_config": model.cfg.to_dict(), "model": model.state_dict(), "step": 1}


def _crops(count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:64]
    smooth = [np.stack([(x * (k + 1) + 40 * c + 30 * np.sin(y / (4 + k))) % 256 for c in range(3)], axis=-1)
              for k in range(count)]
    return [np.clip(c + rng.normal(0, 12, c.shape), 0, 255).astype(np.uint8) for c in smooth]


@torch.no_grad()
def _decoded_image(model: ShaeV9, weights: dict, x: torch.Tensor) -> torch.Tensor:
    """The model's image of x at level 1 (0-based), nearest rounding."""
    model.load_state_dict(weights)
    model.eval()
    centers = model.quantizer.centers.sort().values
    return model.reconstruct(centers[model.quantizer.symbols(model.latent(x, 1))] * model.log_inv_gain[1].exp()[None, :, None, None])


def test_half_channels_default_to_channels_and_set_the_first_and_last_layers(tiny_v9_config: dict) -> None:
    assert ShaeV9Config.from_dict(tiny_v9_config).half_resolution_channels == 8
    model = ShaeV9(ShaeV9Config.from_dict({**tiny_v9_config, "half_channels": 4}))
    assert model.analysis[0].out_channels == 4 and model.analysis[2].in_channels == 4
    assert model.synthesis[4].out_channels == 4 and model.synthesis[6].in_channels == 4
    assert model.analysis[2].out_channels == model.synthesis[4].in_channels == 8
    out = model(torch.rand(2, 3, 64, 64), torch.tensor([0, 1]))
    assert out["x_hat"].shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="half_channels"):
        ShaeV9Config.from_dict({**tiny_v9_config, "half_channels": -1})


def test_quarter_channels_set_the_layers_around_the_quarter_resolution_maps(tiny_v9_config: dict) -> None:
    cfg = ShaeV9Config.from_dict({**tiny_v9_config, "half_channels": 4, "quarter_channels": 6})
    assert ShaeV9Config.from_dict(tiny_v9_config).quarter_resolution_channels == 8
    model = ShaeV9(cfg)
    assert model.analysis[2].out_channels == model.analysis[4].in_channels == 6
    assert model.synthesis[2].out_channels == model.synthesis[4].in_channels == 6
    assert model.analysis[2].in_channels == model.synthesis[4].out_channels == 4
    assert model.analysis[4].out_channels == model.synthesis[2].in_channels == 8
    assert model(torch.rand(1, 3, 64, 64), torch.tensor([1]))["x_hat"].shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="quarter_channels"):
        ShaeV9Config.from_dict({**tiny_v9_config, "quarter_channels": -2})


def test_quarter_resolution_cut_touches_only_the_layers_around_those_maps(tiny_v9_config: dict) -> None:
    state = _state({**tiny_v9_config, "half_channels": 4})
    pruned, measured = prune_channels(state, 5, _crops(), _crops(2, seed=1), fit_steps=20, levels=[1], at="quarter")
    cfg = ShaeV9Config.from_dict(pruned["model_config"])
    assert (cfg.half_channels, cfg.quarter_channels, measured.at) == (4, 5, "quarter")
    assert pruned["pruned_quarter_channels"]["to"] == 5 and len(measured.kept_synthesis) == 5
    new = ShaeV9(cfg)
    new.load_state_dict(pruned["model"])  # shapes match the narrower config
    refitted = ("analysis.0", "analysis.1", "analysis.2", "analysis.3", "analysis.4",
                "synthesis.2", "synthesis.3", "synthesis.4", "synthesis.5", "synthesis.6")
    untouched = [name for name in state["model"] if not name.startswith(refitted)]
    assert untouched and all(torch.equal(pruned["model"][name], state["model"][name]) for name in untouched)
    kept = torch.tensor(measured.kept_analysis)
    cut, _ = prune_channels(state, 5, _crops(), _crops(1), fit_steps=0, levels=[1], at="quarter")
    assert torch.equal(cut["model"]["analysis.3.gamma"], state["model"]["analysis.3.gamma"][kept][:, kept])
    assert torch.equal(cut["model"]["analysis.4.weight"], state["model"]["analysis.4.weight"][:, kept])
    kept = torch.tensor(measured.kept_synthesis)
    assert torch.equal(cut["model"]["synthesis.2.weight"], state["model"]["synthesis.2.weight"][:, kept])
    assert torch.equal(cut["model"]["synthesis.4.weight"], state["model"]["synthesis.4.weight"][kept])
    with pytest.raises(ValueError, match="1/4 resolution"):
        prune_channels(state, 8, _crops(), _crops(1), at="quarter")
    with pytest.raises(ValueError, match="quarter"):
        prune_channels(state, 4, _crops(), _crops(1), at="eighth")  # type: ignore[arg-type]


def test_a_channel_the_next_layer_ignores_scores_zero(trained_tiny_v9: ShaeV9) -> None:
    model = trained_tiny_v9
    saved = model.analysis[2].weight.detach().clone(), model.synthesis[6].weight.detach().clone()
    with torch.no_grad():
        model.analysis[2].weight[:, 3] = 0
        model.synthesis[6].weight[5] = 0
    try:
        analysis, synthesis = channel_scores(model, torch.rand(2, 3, 64, 64), 1)
    finally:
        with torch.no_grad():
            model.analysis[2].weight.copy_(saved[0])
            model.synthesis[6].weight.copy_(saved[1])
    assert analysis[3] == 0 and synthesis[5] == 0
    assert (analysis[[k for k in range(8) if k != 3]] > 0).all() and (synthesis[[k for k in range(8) if k != 5]] > 0).all()


def test_pruned_checkpoint_keeps_everything_else_and_the_refit_recovers_quality(tiny_v9_config: dict) -> None:
    state = _state(tiny_v9_config)
    state["optimizer"] = {"state": {}}
    pruned, measured = prune_channels(state, 4, _crops(), _crops(2, seed=1), fit_steps=40)
    cfg = ShaeV9Config.from_dict(pruned["model_config"])
    assert cfg.half_channels == 4 and "optimizer" not in pruned  # a new run starts from it with --init
    assert len(measured.kept_analysis) == len(measured.kept_synthesis) == 4
    new = ShaeV9(cfg)
    new.load_state_dict(pruned["model"])
    untouched = [name for name in state["model"] if not name.startswith(("analysis.0", "analysis.1", "analysis.2",
                                                                          "synthesis.4", "synthesis.5", "synthesis.6"))]
    assert all(torch.equal(pruned["model"][name], state["model"][name]) for name in untouched)
    kept = torch.tensor(measured.kept_analysis)
    gamma = state["model"]["analysis.1.gamma"][kept][:, kept]
    assert not torch.equal(pruned["model"]["analysis.1.gamma"], gamma)  # refitted after the cut
    assert measured.levels == (0, 1) and len(measured.psnr_cut) == len(measured.bpp_after) == 2
    # the refit brings the outputs back towards the original's, on crops it was not fitted on
    cut, _ = prune_channels(state, 4, _crops(), _crops(2, seed=1), fit_steps=0, levels=[1])
    test = torch.stack([torch.from_numpy(c).permute(2, 0, 1) for c in _crops(2, seed=1)]).float() / 255
    reference = _decoded_image(ShaeV9(ShaeV9Config.from_dict(tiny_v9_config)), state["model"], test)
    cut_error = (_decoded_image(ShaeV9(cfg), cut["model"], test) - reference).pow(2).mean()
    fitted_error = (_decoded_image(ShaeV9(cfg), pruned["model"], test) - reference).pow(2).mean()
    assert fitted_error < 0.5 * cut_error
    with pytest.raises(ValueError, match="keep"):
        prune_channels(state, 8, _crops(), _crops(1))


def test_refit_lowers_the_error_to_the_original(tiny_v9_config: dict) -> None:
    state = _state(tiny_v9_config)
    old = ShaeV9(ShaeV9Config.from_dict(tiny_v9_config)).eval()
    old.load_state_dict(state["model"])
    old.requires_grad_(False)
    x = torch.stack([torch.from_numpy(c).permute(2, 0, 1) for c in _crops()]).float() / 255
    pruned, _ = prune_channels(state, 4, _crops(), _crops(1), fit_steps=0, levels=[0])
    new = ShaeV9(ShaeV9Config.from_dict(pruned["model_config"])).eval()
    new.load_state_dict(pruned["model"])
    errors_cut = fit_cut_layers(old, new, x, steps=1, lr=0.0)
    errors_fit = fit_cut_layers(old, new, x, steps=40)
    assert errors_fit[0] < errors_cut[0] and errors_fit[1] < errors_cut[1]


@pytest.mark.slow  # a subprocess that imports torch: seconds
def test_prune_script_writes_a_model_that_train_can_start_from(tmp_path: Path, photo_folder: Path,
                                                               tiny_v9_config: dict) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "prune_maps.py"
    torch.save(_state(tiny_v9_config), tmp_path / "a.pt")
    command = [sys.executable, str(script), str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--keep", "4",
               "--data", str(photo_folder), "--crops", "2", "--test-crops", "1", "--crop", "64", "--fit-steps", "5",
               "--levels", "1", "2", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [int(r[0]) for r in rows] == [1, 2] and all(len(r) == 7 for r in rows)
    model, _ = load_model(tmp_path / "b.pt")
    assert model.cfg.half_channels == 4
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "exists" in again.stderr
