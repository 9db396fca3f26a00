"""Runtime parts of shae-v9's entropy model (imgcodec.hyperprior) that need no trained model;
coding round trips with a trained one are in tests/train/test_shae_v9.py."""
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
