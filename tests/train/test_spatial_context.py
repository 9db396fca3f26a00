"""shae-v9's spatial (checkerboard) context: causal in training, bit-exact in the integer coder,
and grown onto a trained model without changing what it codes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from imgcodec.config import ShaeV9Config
from imgcodec.errors import FormatError
from imgcodec.hyperprior import HyperpriorTables, anchor_mask
from imgcodec.train.growth import grow_spatial_context
from imgcodec.train.shae_v9 import GroupParameters, ShaeV9
from imgcodec.train.training import load_model

REPO = Path(__file__).resolve().parents[2]


def test_anchors_are_a_checkerboard() -> None:
    mask = anchor_mask(3, 4)
    assert mask.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]


def test_anchor_parameters_ignore_the_group_and_the_others_read_only_anchors(tiny_v9_config: dict) -> None:
    torch.manual_seed(1)
    cfg = ShaeV9Config.from_dict({**tiny_v9_config, "spatial_features": 3})
    group = GroupParameters(cfg, 1)
    torch.nn.init.normal_(group.net[0].weight)  # so that the spatial features reach the output
    hyper, decoded = torch.randn(1, cfg.param_features, 6, 6), torch.randn(1, 2, 6, 6)
    current = torch.randn(1, 4, 6, 6)
    anchors = torch.from_numpy(anchor_mask(6, 6))
    with torch.no_grad():
        base = group(hyper, decoded, current)[0]
        other = current.clone()
        other[..., ~anchors] += 5.0  # the non-anchor values: nothing may change
        assert torch.equal(group(hyper, decoded, other)[0], base)
        other = current.clone()
        other[0, :, 2, 2] += 5.0  # one anchor: its neighbours change, no anchor does
        moved = (group(hyper, decoded, other)[0] - base).abs().sum(dim=(0, 1)) > 0
    assert not moved[anchors].any() and moved[1, 2] and moved[2, 3]
    with pytest.raises(ValueError, match="own decoded values"):
        group(hyper, decoded)


def test_round_trip_across_processes_and_the_real_rate_near_the_estimate(
        tmp_path: Path, trained_tiny_v9_spatial: ShaeV9, decode_in_fresh_processes: Callable[[Path, int, int], None]) -> None:
    model = trained_tiny_v9_spatial
    tables = model.frozen_tables()
    assert len(tables.spatials) == 3 and all(len(layers) == 1 for layers in tables.spatials)
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(4))
    for level in (0, 1):
        payload = model.compress(x, level, tables)
        y_symbols, z_symbols = model.symbols(x, level)
        decoded_y, decoded_z = tables.decode(payload, 8, 12)
        assert np.array_equal(decoded_y, y_symbols) and np.array_equal(decoded_z, z_symbols)
        with torch.no_grad():
            estimate = float(model(x, torch.tensor([level]))["bits"])
        assert 8 * len(payload) < 1.15 * estimate + 64
    with pytest.raises(ValueError, match="two passes"):
        tables.group_table_ids(0, tables.features(z_symbols), None)
    tables.save(tmp_path / "tables.npz")
    np.save(tmp_path / "y.npy", y_symbols)
    (tmp_path / "payload.bin").write_bytes(payload)
    decode_in_fresh_processes(tmp_path, 8, 12)



@pytest.mark.parametrize("spatial", [False, True])
def test_symbols_a_chooser_picks_are_what_the_payload_decodes(spatial: bool, trained_tiny_v9: ShaeV9,
                                                              trained_tiny_v9_spatial: ShaeV9) -> None:
    """encode_choosing hands each pass (a group; or its anchors, then the rest) its table rows
    and the symbols chosen so far; whatever it picks is what is coded and decoded, and the bits
    it reports are those symbols' under those rows."""
    model = trained_tiny_v9_spatial if spatial else trained_tiny_v9
    tables = model.frozen_tables()
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(7))
    y_symbols, z_symbols = model.symbols(x, 0)
    rng = np.random.default_rng(0)
    seen: list[tuple[int, tuple[int, ...], bool]] = []

    def choose(start: int, rows: np.ndarray, mask: np.ndarray | None, chosen: np.ndarray) -> np.ndarray:
        assert np.array_equal(chosen[start + rows.shape[0]:], y_symbols[start + rows.shape[0]:])  # later: as given
        seen.append((start, rows.shape, mask is not None))
        return rng.integers(0, tables.y_rows.shape[1], rows.shape).astype(np.int32)

    payload, bits, coded = tables.encode_choosing(y_symbols, z_symbols, choose)
    decoded_y, decoded_z = tables.decode(payload, 8, 12)
    assert np.array_equal(decoded_y, coded) and np.array_equal(decoded_z, z_symbols)
    assert not np.array_equal(coded, y_symbols)
    starts = np.cumsum((0,) + tables.groups[:-1]).tolist()
    assert [start for start, _, _ in seen] == [s for s in starts for _ in range(2 if spatial else 1)]
    assert all(masked == spatial for _, _, masked in seen)
    assert bits == pytest.approx(tables.encode_choosing(coded, z_symbols)[1])
    assert 8 * len(payload) < 1.02 * bits + 64


def test_tables_with_a_spatial_context_save_load_and_refuse_a_partial_one(tmp_path: Path,
                                                                         trained_tiny_v9_spatial: ShaeV9) -> None:
    tables = trained_tiny_v9_spatial.frozen_tables()
    tables.save(tmp_path / "tables.npz")
    loaded = HyperpriorTables.load(tmp_path / "tables.npz")
    assert [[layer.weight.tolist() for layer in layers] for layers in loaded.spatials] == \
        [[layer.weight.tolist() for layer in layers] for layers in tables.spatials]
    rng = np.random.default_rng(0)
    y, z = rng.integers(0, 9, (12, 8, 12)).astype(np.int32), rng.integers(0, 5, (4, 2, 3)).astype(np.int32)
    payload = tables.encode(y, z)
    assert loaded.encode(y, z) == payload and np.array_equal(loaded.decode(payload, 8, 12)[0], y)
    with np.load(tmp_path / "tables.npz") as data:
        arrays = {k: data[k] for k in data.files if not k.startswith("spatial2.")}
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(FormatError, match="some groups only"):
        HyperpriorTables.load(tmp_path / "partial.npz")
    for bad in (payload[:-4], payload[:3]):
        with pytest.raises(FormatError):
            assert np.array_equal(tables.decode(bad, 8, 12)[0], y)


def _state(model: ShaeV9) -> dict:
    return {"architecture": "shae-v9", "model_config": model.cfg.to_dict(), "model": model.state_dict(), "step": 7,
            "optimizer": {"state": {}}, "ema": {}}


def test_grown_context_starts_silent_then_learns(trained_tiny_v9: ShaeV9) -> None:
    grown = grow_spatial_context(_state(trained_tiny_v9), 3)
    assert "optimizer" not in grown and "ema" not in grown and grown["step"] == 7
    model = ShaeV9(ShaeV9Config.from_dict(grown["model_config"]))
    model.load_state_dict(grown["model"])
    assert model.cfg.spatial_features == 3
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    level = torch.tensor([0, 1])
    with torch.no_grad():
        before, after = trained_tiny_v9(x, level), model.eval()(x, level)
    torch.testing.assert_close(after["bits"], before["bits"])
    torch.testing.assert_close(after["x_hat"], before["x_hat"])
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        model(x, level)["bits"].sum().backward()
        optimizer.step()
    assert model.parameters_of_group[1].net[0].weight[:, -3:].abs().sum() > 0
    assert model.parameters_of_group[1].spatial.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="already has"):
        grow_spatial_context(grown, 3)


@pytest.mark.slow  # a subprocess that imports torch: seconds
def test_grow_script_writes_a_model_that_codes_as_before(tmp_path: Path, trained_tiny_v9: ShaeV9) -> None:
    torch.save(_state(trained_tiny_v9), tmp_path / "a.pt")
    command = [sys.executable, str(REPO / "scripts" / "grow_spatial.py"), str(tmp_path / "a.pt"),
               str(tmp_path / "b.pt"), "--features", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 features in each of 3 groups" in done.stdout and "changed by 0 bits" in done.stdout
    model, _ = load_model(tmp_path / "b.pt")
    assert model.cfg.spatial_features == 2
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "exists" in again.stderr
