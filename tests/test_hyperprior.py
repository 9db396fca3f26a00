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


def test_tables_in_earlier_layouts_still_load(tmp_path: Path, earlier_tables) -> None:
    """The installed model's tables as save writes them now (y's tables as what rebuilds them)
    and as 0.11.2 and 0.11.1 did (y's tables as counts; 16-bit arrays as zigzag bytes, then as
    byte planes): the same tables, each layout smaller than the one before."""
    import dataclasses

    from imgcodec.errors import FormatError
    from imgcodec.hyperprior import HyperpriorTables
    from imgcodec.zoo import default_model

    path = default_model().folder / "hyperprior.npz"
    tables = HyperpriorTables.load(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    assert "y_correction_gaps" in arrays and not any(k.startswith("y_count_steps") for k in arrays)
    sizes = [path.stat().st_size]
    for release in ("0.11.2", "0.11.1"):
        earlier = tmp_path / f"{release}.npz"
        earlier_tables(tables, earlier, release)
        loaded = HyperpriorTables.load(earlier)
        assert loaded.y_tables.grid is None and np.array_equal(loaded.y_counts, tables.y_counts)
        for ours, theirs in zip([tables.hyper, *tables.contexts, *tables.heads],
                                [loaded.hyper, *loaded.contexts, *loaded.heads]):
            assert all(np.array_equal(a.weight, b.weight) and a.weight.dtype == b.weight.dtype
                       for a, b in zip(ours, theirs))
        assert dataclasses.fields(tables) == dataclasses.fields(loaded)
        sizes.append(earlier.stat().st_size)
    assert sizes == sorted(sizes) and sizes[1] > sizes[0] + 1_000_000  # y's counts took a megabyte
    with np.load(tmp_path / "0.11.2.npz") as data:
        damaged = {k: data[k] for k in data.files}
    damaged["y_count_steps.escapes"] = damaged["y_count_steps.escapes"][:-1]
    np.savez_compressed(tmp_path / "damaged.npz", **damaged)
    with pytest.raises(FormatError, match="escaped values but"):
        HyperpriorTables.load(tmp_path / "damaged.npz")


@pytest.mark.parametrize("change, message", [
    ({"y_correction_gaps": lambda a: a[:-1]}, "one difference per position"),
    ({"y_correction_gaps": lambda a: np.concatenate([a[:1], a[1:] * 0 + 2**31])}, "inside the tables"),
    ({"y_max_count": lambda a: a * 0 + 70_000}, "largest count"),
    ({"y_means": lambda a: a[1:]}, "do not fit the grid"),
    ({"normal_cdf": lambda a: a[::2]}, "normal table"),
    ({"y_sha256": None}, "y_sha256"),
])
def test_damaged_rebuild_arrays_are_format_errors(tmp_path: Path, change: dict, message: str) -> None:
    from imgcodec.errors import FormatError
    from imgcodec.hyperprior import HyperpriorTables
    from imgcodec.zoo import default_model

    with np.load(default_model().folder / "hyperprior.npz") as data:
        arrays = {k: data[k] for k in data.files}
    for key, how in change.items():
        if how is None:
            del arrays[key]
        else:
            arrays[key] = how(arrays[key])
    np.savez_compressed(tmp_path / "damaged.npz", **arrays)
    with pytest.raises(FormatError, match=message):
        HyperpriorTables.load(tmp_path / "damaged.npz")


def test_a_damaged_correction_is_caught_when_its_row_is_built(tmp_path: Path) -> None:
    """A correction whose value changed leaves its row summing to something else than 2^16: the
    row is refused when a coding pass builds it, and the digest check fails."""
    from imgcodec.errors import FormatError
    from imgcodec.hyperprior import HyperpriorTables
    from imgcodec.zoo import default_model

    with np.load(default_model().folder / "hyperprior.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["y_correction_values"] = arrays["y_correction_values"].copy()
    arrays["y_correction_values"][0] += 1
    np.savez_compressed(tmp_path / "damaged.npz", **arrays)
    tables = HyperpriorTables.load(tmp_path / "damaged.npz")
    row = int(np.cumsum(arrays["y_correction_gaps"].astype(np.int64))[0]) // len(arrays["y_centers"])
    tables.y_tables.ensure(np.array([row - 1 if row else row + 1]))  # a row without it builds
    with pytest.raises(FormatError, match="damaged"):
        tables.y_tables.ensure(np.array([row]))
    with pytest.raises(FormatError, match="damaged"):
        tables.y_tables.check()
