"""The residual stage's frozen parts: tables, block layout, activity contexts, coding."""
from __future__ import annotations

import time

import numpy as np
import pytest

from imgcodec.context_prior import TABLE_TOTAL
from imgcodec.detail_stage import (ACTIVITY_BINS, BLOCK, LIMIT, VALUES, DetailStage, block_activity, from_blocks,
                                   laplace_tables, scale_grid, to_blocks)
from imgcodec.errors import FormatError


def _stage(channels: int = 24, levels: int = 3, seed: int = 0) -> DetailStage:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((VALUES, channels)))
    table_ids = rng.integers(10, len(scale_grid()), size=(levels, ACTIVITY_BINS, channels)).astype(np.uint8)
    steps = np.array([0.0] + [0.05] * (levels - 1), dtype=np.float32)
    return DetailStage(basis.T.astype(np.float32), steps, 0.15, table_ids, laplace_tables(scale_grid()))


def test_laplace_tables_are_valid_and_ordered_by_scale() -> None:
    tables = laplace_tables(scale_grid()).astype(np.int64)
    assert tables.shape == (len(scale_grid()), 2 * LIMIT + 1)
    assert np.all(tables.sum(axis=1) == TABLE_TOTAL) and tables.min() >= 1
    assert np.abs(tables - tables[:, ::-1]).max() <= 1  # symmetric up to the counts' rounding
    assert np.all(np.diff(tables[:, LIMIT]) <= 0)  # wider tables give zero less
    assert tables[0, LIMIT] > TABLE_TOTAL - 2 * LIMIT - 2 and tables[-1, LIMIT] < TABLE_TOTAL // 20


def test_blocks_round_trip_and_layout() -> None:
    image = np.random.default_rng(1).random((2 * BLOCK, 3 * BLOCK, 3)).astype(np.float32)
    blocks = to_blocks(image)
    assert blocks.shape == (2, 3, VALUES)
    assert np.array_equal(from_blocks(blocks), image)
    # channel, row, column inside a block
    assert blocks[1, 2, 0] == image[BLOCK, 2 * BLOCK, 0] and blocks[1, 2, 1] == image[BLOCK, 2 * BLOCK + 1, 0]
    assert blocks[0, 0, BLOCK * BLOCK] == image[0, 0, 1]


def test_activity_counts_distance_from_zero_under_each_block() -> None:
    symbols = np.full((3, 5, 7), 4, dtype=np.uint8)  # zero symbol 4, latent at 1/8 of an 40x56 image
    symbols[0, 0, 0] = 5  # distance 1 under block 0,0
    symbols[1, 2:4, 2:4] = 0  # distance 4 x 4 = 16 under block 1,1
    symbols[2, 4, 6] = 12  # distance 8 under block 2,3 (half outside the latent)
    activity = block_activity(symbols, 4, 3, 4, 2)
    assert activity.shape == (3, 4)
    assert activity[0, 0] == 1 and activity[1, 1] == 4 and activity[2, 3] == 3
    assert activity.sum() == 1 + 4 + 3
    assert block_activity(np.full((3, 5, 7), 200, np.uint8), 0, 3, 4, 2).max() == ACTIVITY_BINS - 1


def test_symbols_code_and_decode_exactly() -> None:
    stage = _stage()
    rng = np.random.default_rng(2)
    residual = (rng.standard_normal((3 * BLOCK, 4 * BLOCK, 3)) * 0.02).astype(np.float32)
    residual[:BLOCK, :BLOCK] *= 40  # some symbols clip at LIMIT
    symbols = stage.symbols(residual, 1)
    assert symbols.shape == (3, 4, stage.channels) and np.abs(symbols).max() == LIMIT
    activity = rng.integers(0, ACTIVITY_BINS, size=(3, 4))
    payload = stage.encode(symbols, activity, 1)
    assert np.array_equal(stage.decode(payload, activity, 1), symbols)
    assert abs(8 * len(payload) - stage.bits(symbols, activity, 1)) <= 64 + 0.01 * stage.bits(symbols, activity, 1)
    with pytest.raises(FormatError):
        stage.decode(payload[:-4], activity, 1)
    with pytest.raises(FormatError):
        stage.decode(payload + b"\x12\x34\x56\x78" * 8, activity, 1)


def test_rounding_with_dead_zone_and_the_pixels_drawn() -> None:
    stage = _stage()
    coefficients = np.array([0.0, 0.6, -0.6, 0.7, 1.64, 1.66, -2.4], dtype=np.float32) * 0.05
    residual = np.zeros((BLOCK, BLOCK, 3), dtype=np.float32)
    residual += from_blocks((coefficients @ stage.basis[:len(coefficients)])[None, None])
    symbols = stage.symbols(residual, 1)[0, 0]
    assert list(symbols[:len(coefficients)]) == [0, 0, 0, 1, 1, 2, -2]  # rounds up from k - 0.5 + 0.15
    assert np.all(symbols[len(coefficients):] == 0)
    drawn = stage.pixels(symbols[None, None], 1)
    expected = from_blocks(((symbols * np.float32(0.05)) @ stage.basis)[None, None])
    np.testing.assert_allclose(drawn, expected, atol=1e-6)


def test_a_tiny_payload_cannot_claim_a_huge_stage() -> None:
    stage = _stage()
    activity = np.zeros((1024, 1024), dtype=np.int64)
    start = time.perf_counter()
    with pytest.raises(FormatError, match="too short"):
        stage.decode(b"\x00" * 8, activity, 1)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("change", ["basis", "ids", "tables", "steps", "deadzone"])
def test_inconsistent_stages_are_refused(change: str) -> None:
    good = _stage()
    parts = dict(basis=good.basis, steps=good.steps, deadzone=good.deadzone, table_ids=good.table_ids,
                 tables=good.tables)
    if change == "basis":
        parts["basis"] = good.basis[:, :100]
    elif change == "ids":
        parts["table_ids"] = good.table_ids[:, :, :-1]
    elif change == "tables":
        tables = good.tables.copy()
        tables[3, 0] += 1
        parts["tables"] = tables
    elif change == "steps":
        parts["steps"] = np.array([0.1, -0.1, 0.1], dtype=np.float32)
    else:
        parts["deadzone"] = 0.5
    with pytest.raises(ValueError):
        DetailStage(**parts)


def test_save_and_load_give_the_same_stage(tmp_path) -> None:
    stage = _stage()
    digest = stage.save(tmp_path / "detail.npz")
    assert len(digest) == 64
    loaded = DetailStage.load(tmp_path / "detail.npz")
    for name in ("basis", "steps", "table_ids", "tables"):
        assert np.array_equal(getattr(loaded, name), getattr(stage, name))
    assert loaded.deadzone == stage.deadzone and not loaded.active(0) and loaded.active(1)
