"""y's tables rebuilt from their Gaussians (imgcodec.gaussian_tables): the normal CDF, the
counts against a float reference, rows built on demand, corrections, and every installed
model's tables against the digest stored where they were saved."""
from __future__ import annotations

import math

import numpy as np
import pytest

from imgcodec.context_prior import quantize_probabilities
from imgcodec.errors import FormatError
from imgcodec.gaussian_tables import TABLE_TOTAL, GaussianGrid, YTables, normal_table
from imgcodec.hyperprior import HyperpriorTables
from imgcodec.zoo import list_models


def small_grid(floor: float = 1e-9) -> GaussianGrid:
    centers = np.array([-3.0, -1.75, -1.0, -0.4, 0.0, 0.3, 1.1, 2.0, 4.5])
    means = centers[0] + 0.25 * np.arange(31)
    scales = np.exp(np.linspace(math.log(0.11), math.log(64.0), 12))
    return GaussianGrid(centers, means, scales, floor, *normal_table())


def reference_counts(grid: GaussianGrid) -> np.ndarray:
    """The tables from math.erfc in float64, quantized as the export does: Km*Ks,L."""
    edges = (grid.centers[1:] + grid.centers[:-1]) / 2
    rows = []
    for mean in grid.means:
        for scale in grid.scales:
            cdf = [0.0] + [0.5 * math.erfc(-(e - mean) / scale / math.sqrt(2)) for e in edges] + [1.0]
            rows.append(np.maximum(np.diff(cdf), grid.floor))
    return quantize_probabilities(np.array(rows))


def test_the_normal_cdf_matches_erfc_to_float_precision() -> None:
    grid = small_grid()
    t = np.concatenate([np.linspace(-11, 11, 20_001), [-9.0, 9.0, 0.0, 1 / 128, -1 / 128]])
    expected = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in t])
    assert np.abs(grid._cdf(t) - expected).max() < 5e-15


def test_rebuilt_counts_are_tables_and_nearly_all_equal_the_float_reference() -> None:
    grid = small_grid()
    rows = np.arange(len(grid.means) * len(grid.scales))
    counts = grid.counts(rows)
    assert counts.shape == (rows.size, len(grid.centers))
    assert counts.min() >= 1 and np.all(counts.sum(axis=1) == TABLE_TOTAL)
    reference = reference_counts(grid)
    assert np.count_nonzero(counts != reference) <= counts.size // 1000
    assert np.abs(counts - reference).max() <= 1
    np.testing.assert_array_equal(grid.counts(rows[::-1]), counts[::-1])  # a row does not depend on its batch


def test_tables_rebuilt_from_corrections_are_exact_and_built_only_when_asked() -> None:
    grid = small_grid()
    km, ks, size = grid.shape
    exact = reference_counts(grid).reshape(km, ks, size).astype(np.uint16)
    exact[3, 4] = exact[3, 4][::-1]  # tables the Gaussians alone would not give
    given = YTables.whole(exact, grid)
    positions, differences = given.corrections()
    assert positions.size >= size - 1 and np.all(differences != 0)
    tables = YTables.rebuilt(grid, positions, differences, given.max_count, given.sha256())
    ids = np.array([[3 * ks + 4, 0], [3 * ks + 4, km * ks - 1]])
    tables.ensure(ids)
    assert int(tables._built.sum()) == 3
    np.testing.assert_array_equal(tables.rows[ids], exact.reshape(-1, size)[ids])
    np.testing.assert_array_equal(tables.full(), exact)
    tables.check()
    assert tables.min_bits == pytest.approx(-math.log2(exact.max() / TABLE_TOTAL))


@pytest.mark.parametrize("positions, differences, max_count, message", [
    ([5, 5], [1, -1], 100, "increasing"),
    ([1, 10**9], [1, -1], 100, "inside"),
    ([1, 2], [1], 100, "one difference"),
    ([], [], 0, "largest count"),
])
def test_bad_corrections_are_refused(positions: list, differences: list, max_count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        YTables.rebuilt(small_grid(), np.array(positions, np.int64), np.array(differences, np.int64), max_count,
                        bytes(32))


def test_a_wrong_digest_fails_the_check() -> None:
    grid = small_grid()
    tables = YTables.rebuilt(grid, np.array([], np.int64), np.array([], np.int64), TABLE_TOTAL, bytes(32))
    with pytest.raises(FormatError, match="other counts"):
        tables.check()


def test_grids_are_validated() -> None:
    grid = small_grid()
    with pytest.raises(ValueError, match="sorted"):
        GaussianGrid(grid.centers[::-1], grid.means, grid.scales, 1e-9, grid.normal_cdf, grid.normal_pdf)
    with pytest.raises(ValueError, match="positive"):
        GaussianGrid(grid.centers, grid.means, -grid.scales, 1e-9, grid.normal_cdf, grid.normal_pdf)


def test_every_installed_model_rebuilds_the_tables_it_was_saved_with() -> None:
    """The rebuild on this machine gives every count that the model's saving machine stored a
    digest of (imgcodec.gaussian_tables: IEEE basic operations only)."""
    checked = 0
    for info in list_models():
        if (info.folder / "hyperprior.npz").exists():
            tables = HyperpriorTables.load(info.folder / "hyperprior.npz")
            assert tables.y_tables.grid is not None, info.name
            tables.y_tables.check()
            checked += 1
    assert checked >= 6


def test_threads_building_rows_together_build_the_same_tables() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from imgcodec.zoo import default_model

    tables = HyperpriorTables.load(default_model().folder / "hyperprior.npz").y_tables
    rows = tables.rows.shape[0]
    batches = [np.random.default_rng(seed).integers(0, rows, 3000) for seed in range(8)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(tables.ensure, batches))
    assert int(tables._built.sum()) == len(np.unique(np.concatenate(batches)))
    tables.check()  # every row, those the threads built included, as saved
