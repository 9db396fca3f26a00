"""shae-v9's training model: shapes, a proper rate term, and training it through scripts/train.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from imgcodec.config import ShaeV9Config
from imgcodec.context_prior import quantize_probabilities
from imgcodec.train.shae_v9 import ShaeV9, gaussian_bin_log2, gaussian_bin_log2_at, gaussian_bin_log2_window

REPO = Path(__file__).resolve().parents[2]


def test_bins_of_the_centers_hold_all_probability() -> None:
    centers = torch.tensor([-3.0, -1.2, 0.0, 0.7, 2.5])
    mean = torch.tensor([[[[-10.0, 0.3, 25.0]]]])  # far below, inside, far above the centers
    scale = torch.tensor([[[[0.5, 0.2, 0.11]]]])
    probs = 2 ** gaussian_bin_log2(centers, mean, scale)  # 1,1,1,3,5
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 1, 1, 3), atol=1e-5, rtol=0)
    assert probs[0, 0, 0, 0, 0] > 0.99 and probs[0, 0, 0, 2, -1] > 0.99
    assert probs[0, 0, 0, 1].argmax() == 2  # the bin around 0.3 is the center 0's


def test_the_window_table_is_the_full_table_at_the_window() -> None:
    """What the windowed soft assignment meets in training: the full table's entries at the
    window's centers, where they are not below the floor."""
    centers = torch.arange(-15.0, 16.0)
    mean = torch.tensor([[[[0.3, -4.2, 7.9, 14.6]]]])
    scale = torch.tensor([[[[0.11, 1.7, 6.0, 0.5]]]])
    window = torch.tensor([0, 8, 5, 24])[None, None, None, :, None] + torch.arange(7)  # 1,1,1,4,7
    full = gaussian_bin_log2(centers, mean, scale).gather(-1, window)
    windowed = gaussian_bin_log2_window(centers, mean, scale, window)
    shown = full > -16
    torch.testing.assert_close(windowed[shown], full[shown], atol=1e-4, rtol=1e-4)
    assert torch.all(windowed[~shown] <= -16 + 1e-3)


def test_training_prices_each_symbol_as_the_frozen_table_does() -> None:
    """The rate term charges what the exported integer table will: ~16 bits at most for a
    symbol far from the mean (every symbol keeps one count in 2^16), never the 30 bits of a
    bare 1e-9 floor; so the training estimate tracks the real file size."""
    centers = torch.arange(-15.0, 16.0)
    mean = torch.tensor([[[[0.3, -4.2, 7.9]]]])
    scale = torch.tensor([[[[0.11, 1.7, 6.0]]]])
    probs = torch.exp2(gaussian_bin_log2(centers.double(), mean.double(), scale.double())).numpy()
    table_bits = -np.log2(quantize_probabilities(probs) / 65536.0)  # 1,1,1,3,31
    estimate = -torch.stack([gaussian_bin_log2_at(centers, mean, scale, torch.full((1, 1, 1, 3), k))
                             for k in range(len(centers))], dim=-1).numpy()
    assert table_bits.max() == 16.0 and estimate.max() < 16.01
    np.testing.assert_allclose(estimate, table_bits, atol=0.4)  # counts round to whole units


def test_forward_shapes_rate_and_gradients(tiny_v9_config: dict) -> None:
    torch.manual_seed(0)
    model = ShaeV9(ShaeV9Config.from_dict(tiny_v9_config))
    x = torch.rand(2, 3, 64, 128)
    out = model(x, torch.tensor([0, 1]))
    assert out["x_hat"].shape == x.shape
    assert torch.all(out["bits"] > out["side_bits"]) and torch.all(out["side_bits"] > 0)
    (out["bits"].sum() + ((out["x_hat"] - x) ** 2).mean()).backward()
    for name in ("analysis.0.weight", "hyper_analysis.0.weight", "hyper_logits", "quantizer.centers",
                 "parameters_of_group.2.context.weight", "log_gain"):
        assert model.get_parameter(name).grad is not None and model.get_parameter(name).grad.abs().sum() > 0, name


def test_config_refuses_unknown_keys_and_bad_groups(tiny_v9_config: dict) -> None:
    with pytest.raises(ValueError, match="unknown shae-v9 config key"):
        ShaeV9Config.from_dict({"chanels": 3})
    with pytest.raises(ValueError, match="sum to latent_channels"):
        ShaeV9Config.from_dict({**tiny_v9_config, "groups": [2, 2]})


@pytest.mark.slow  # a script run of several seconds; CI runs it with the slow tests
def test_train_script_trains_saves_small_weights_and_continues(photo_folder: Path, tiny_v9_config: dict) -> None:
    tmp_path = photo_folder
    common = ["--data", str(tmp_path), "--batch-size", "2", "--crop", "64", "--threads", "1", "--val-every", "2",
              "--ckpt-every", "2", "--no-progress"]
    subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--arch", "shae-v9", "--run-dir",
                    str(tmp_path / "a"), "--steps", "2", "--model-config", json.dumps(tiny_v9_config),
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


# --------------------------------------------------------------------------------------------
# Real bytes through the frozen integer entropy model


def test_compress_decompress_round_trip_and_real_rate_near_the_estimate(trained_tiny_v9: ShaeV9) -> None:
    model = trained_tiny_v9
    tables = model.frozen_tables()
    x = torch.rand(1, 3, 128, 192)
    for level in (0, 1):
        payload = model.compress(x, level, tables)
        y_symbols, z_symbols = model.symbols(x, level)
        decoded_y, decoded_z = tables.decode(payload, 128 // 16, 192 // 16)
        assert np.array_equal(decoded_y, y_symbols) and np.array_equal(decoded_z, z_symbols)
        x_hat = model.decompress(payload, level, 128, 192, tables)
        with torch.no_grad():
            reference = model.synthesis(model.quantizer.centers.sort().values[torch.from_numpy(y_symbols).long()][None]
                                        * model.log_inv_gain[level].exp()[None, :, None, None]) + 0.5
        torch.testing.assert_close(x_hat, reference)
        with torch.no_grad():
            estimate = float(model(x, torch.tensor([level]))["bits"])
        # the integer network and the grids cost little; tables floor rare symbols at 2^-16
        assert 8 * len(payload) < 1.15 * estimate + 64


def test_frozen_tables_survive_save_and_load(tmp_path: Path, trained_tiny_v9: ShaeV9) -> None:
    from imgcodec.hyperprior import HyperpriorTables

    tables = trained_tiny_v9.frozen_tables()
    tables.save(tmp_path / "tables.npz")
    loaded = HyperpriorTables.load(tmp_path / "tables.npz")
    y = np.random.default_rng(0).integers(0, 9, (12, 8, 12)).astype(np.int32)
    z = np.random.default_rng(1).integers(0, 5, (4, 2, 3)).astype(np.int32)
    assert tables.encode(y, z) == loaded.encode(y, z)


def test_saved_tables_are_exact_smaller_and_checked(tmp_path: Path, trained_tiny_v9: ShaeV9) -> None:
    """The shipping form: every count and integer weight comes back exactly (also with coarser
    integer weights, which make the file smaller); a file that is not one is a FormatError."""
    import io
    import zipfile

    from imgcodec.errors import FormatError
    from imgcodec.hyperprior import HyperpriorTables

    sizes = []
    for steps in (None, 4):
        tables = trained_tiny_v9.frozen_tables(steps)
        tables.save(tmp_path / f"tables{steps}.npz")
        loaded = HyperpriorTables.load(tmp_path / f"tables{steps}.npz")
        assert np.array_equal(loaded.y_counts, tables.y_counts) and np.array_equal(loaded.z_counts, tables.z_counts)
        for ours, theirs in zip([tables.hyper, *tables.contexts, *tables.heads],
                                [loaded.hyper, *loaded.contexts, *loaded.heads]):
            assert [(a.weight.tolist(), a.bias.tolist(), a.shift, a.upsample, a.leaky) for a in ours] == \
                [(b.weight.tolist(), b.bias.tolist(), b.shift, b.upsample, b.leaky) for b in theirs]
        sizes.append((tmp_path / f"tables{steps}.npz").stat().st_size)
    assert sizes[1] < sizes[0]
    member = io.BytesIO()
    np.save(member, np.zeros(3, np.int64))
    with zipfile.ZipFile(tmp_path / "tables4.npz", "a") as archive:
        archive.writestr("extra.npy", member.getvalue())
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    for bad, message in ((tmp_path / "tables4.npz", "unknown arrays extra"), (tmp_path / "junk.npz", "not a shae-v9")):
        with pytest.raises(FormatError, match=message):
            HyperpriorTables.load(bad)


def test_decoding_is_identical_across_processes_and_thread_counts(
        tmp_path: Path, trained_tiny_v9: ShaeV9, decode_in_fresh_processes: Callable[[Path, int, int], None]) -> None:
    """The integer networks pick the same tables whatever BLAS's threads: decode a payload in
    fresh processes with 1 and 2 threads; both must give the symbols that were encoded."""
    tables = trained_tiny_v9.frozen_tables()
    tables.save(tmp_path / "tables.npz")
    rng = np.random.default_rng(5)
    y = rng.integers(0, 9, (12, 16, 20)).astype(np.int32)
    z = rng.integers(0, 5, (4, 4, 5)).astype(np.int32)
    (tmp_path / "payload.bin").write_bytes(tables.encode(y, z))
    np.save(tmp_path / "y.npy", y)
    decode_in_fresh_processes(tmp_path, 16, 20)


def test_hostile_payloads_are_format_errors(trained_tiny_v9: ShaeV9) -> None:
    from imgcodec.errors import FormatError

    tables = trained_tiny_v9.frozen_tables()
    rng = np.random.default_rng(2)
    y = rng.integers(0, 9, (12, 8, 8)).astype(np.int32)
    z = rng.integers(0, 5, (4, 2, 2)).astype(np.int32)
    payload = tables.encode(y, z)
    with pytest.raises(FormatError, match="too short"):
        tables.decode(payload[:4], 512, 512)  # a tiny payload claiming a large latent
    for bad in (payload[:-4], payload + b"\x00" * 8, payload[:3]):
        with pytest.raises(FormatError):
            decoded, _ = tables.decode(bad, 8, 8)
            assert np.array_equal(decoded, y)  # a payload that decodes anyway must decode right
