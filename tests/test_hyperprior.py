"""Runtime parts of shae-v9's entropy model (imgcodec.hyperprior): grids and anchors, and the
stored layouts, read back from the installed default model's tables; coding round trips with a
trained model are in tests/train/test_shae_v9.py."""
from pathlib import Path

import numpy as np
import pytest

from imgcodec.hyperprior import _cells, _even_step, anchor_mask


@pytest.mark.parametrize("edges", [
    np.arange(-205, 206) * 1024,  # the mean grid's layout: evenly spaced (arithmetic)
    np.arange(-3, 4) * 7 + 2,  # evenly spaced, odd step, offset
    np.array([-8834, -8420, -8006, -7592, -7178, 16000]),  # uneven (the log-scale grid): searchsorted
    np.array([5]), np.array([], dtype=np.int64),
])
def test_grid_cells_equal_searchsorted_at_and_around_every_edge(edges: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.integers(-300_000, 300_000, 5000), edges, edges + 1, edges - 1]).astype(np.int64)
    edges = edges.astype(np.int64)
    np.testing.assert_array_equal(_cells(edges, values, _even_step(edges)), np.searchsorted(edges, values))


def test_anchors_are_the_even_checkerboard() -> None:
    mask = anchor_mask(3, 4)
    assert mask.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]


def test_tables_in_the_earlier_byte_plane_layout_still_load(tmp_path: Path) -> None:
    """An installed model's tables written as save writes them now, and as earlier versions did
    (every 16-bit array as byte planes): the same tables, and the earlier file is not smaller."""
    import dataclasses

    from imgcodec.errors import FormatError
    from imgcodec.hyperprior import HyperpriorTables
    from imgcodec.int_arrays import byte_planes, from_zigzag_bytes
    from imgcodec.zoo import default_model

    path = default_model().folder / "hyperprior.npz"
    tables = HyperpriorTables.load(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    zigzagged = [k[:-len(".zigzag")] for k in arrays if k.endswith(".zigzag")]
    assert "y_count_steps" in zigzagged and any(k.startswith("head") for k in zigzagged)
    earlier = {k: v for k, v in arrays.items() if not k.endswith((".zigzag", ".escapes"))}
    for name in zigzagged:
        earlier[name] = byte_planes(from_zigzag_bytes(arrays[f"{name}.zigzag"], arrays[f"{name}.escapes"], np.uint16))
    np.savez_compressed(tmp_path / "earlier.npz", **earlier)
    loaded = HyperpriorTables.load(tmp_path / "earlier.npz")
    assert np.array_equal(loaded.y_counts, tables.y_counts)
    for ours, theirs in zip([tables.hyper, *tables.contexts, *tables.heads], [loaded.hyper, *loaded.contexts, *loaded.heads]):
        assert all(np.array_equal(a.weight, b.weight) and a.weight.dtype == b.weight.dtype for a, b in zip(ours, theirs))
    assert dataclasses.fields(tables) == dataclasses.fields(loaded)
    assert (tmp_path / "earlier.npz").stat().st_size > path.stat().st_size
    damaged = dict(arrays)
    damaged["y_count_steps.escapes"] = arrays["y_count_steps.escapes"][:-1]
    np.savez_compressed(tmp_path / "damaged.npz", **damaged)
    with pytest.raises(FormatError, match="escaped values but"):
        HyperpriorTables.load(tmp_path / "damaged.npz")
