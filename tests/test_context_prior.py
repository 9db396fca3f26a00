import numpy as np
import pytest

from imgcodec.context_prior import (
    TABLE_TOTAL, PriorTables, context_index, context_symbol_map, num_contexts, quantize_probabilities,
    wavefront_order)


def test_quantized_rows_sum_exactly_and_keep_every_symbol_possible():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(16, 0.05), size=(50,))
    probs[0] = 0.0
    probs[0, 3] = 1.0  # a degenerate row: one certain symbol
    counts = quantize_probabilities(probs)
    assert counts.dtype == np.int64
    assert np.all(counts.sum(axis=-1) == TABLE_TOTAL)
    assert counts.min() >= 1
    assert counts[0, 3] == TABLE_TOTAL - 15
    # Large probabilities are kept to within one count.
    assert np.all(np.abs(counts / TABLE_TOTAL - probs) < 16 / TABLE_TOTAL)


def test_context_uses_left_and_top_with_outside_border():
    symbols = np.array([[[1, 2], [3, 0]]])  # C=1, 2x2
    num = 4
    ctx = context_index(symbols, num)
    outside = num
    assert ctx[0, 0, 0] == outside * (num + 1) + outside
    assert ctx[0, 0, 1] == 1 * (num + 1) + outside  # left = 1, top outside
    assert ctx[0, 1, 0] == outside * (num + 1) + 1  # left outside, top = 1
    assert ctx[0, 1, 1] == 3 * (num + 1) + 2
    assert ctx.max() < num_contexts(num)


def test_context_clip_merges_large_neighbours():
    # 7 centers, mid = 3; clip 1 keeps symbols 2, 3, 4 apart and clips the rest; OUTSIDE -> 3.
    np.testing.assert_array_equal(context_symbol_map(7, 1), [0, 0, 0, 1, 2, 2, 2, 3])
    np.testing.assert_array_equal(context_symbol_map(7), np.arange(8))
    assert num_contexts(7, 1) == 16 and num_contexts(7) == 64
    symbols = np.array([[[0, 6], [3, 5]]])
    ctx = context_index(symbols, 7, clip=1)
    assert ctx[0, 0, 0] == 3 * 4 + 3
    assert ctx[0, 0, 1] == 0 * 4 + 3  # left = 0, clipped to context symbol 0
    assert ctx[0, 1, 1] == 1 * 4 + 2  # left = 3 (mid), top = 6 clipped to 2
    with pytest.raises(ValueError):
        context_symbol_map(7, 4)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (4, 7)])
def test_wavefront_visits_every_position_once_after_its_context(shape):
    h, w = shape
    done = np.zeros(shape, dtype=bool)
    for rows, cols in wavefront_order(h, w):
        for r, c in zip(rows, cols):
            assert c == 0 or done[r, c - 1]
            assert r == 0 or done[r - 1, c]
        assert not done[rows, cols].any()
        done[rows, cols] = True
    assert done.all()


def test_cross_entropy_is_the_sum_of_table_code_lengths():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=(1, 2, num_contexts(3)))
    prior = PriorTables(quantize_probabilities(probs).astype(np.uint16))
    prior.validate()
    symbols = rng.integers(0, 3, size=(2, 3, 4))
    ctx = context_index(symbols, 3)
    expected = 0.0
    for c in range(2):
        for i in range(3):
            for j in range(4):
                expected -= np.log2(prior.counts[0, c, ctx[c, i, j], symbols[c, i, j]] / TABLE_TOTAL)
    assert prior.cross_entropy_bits(symbols, 0) == pytest.approx(expected)


def test_validate_rejects_bad_tables():
    counts = np.full((1, 1, num_contexts(2), 2), TABLE_TOTAL // 2, dtype=np.uint16)
    PriorTables(counts).validate()
    bad = counts.copy()
    bad[0, 0, 0, 0] -= 1
    with pytest.raises(ValueError):
        PriorTables(bad).validate()
    with pytest.raises(ValueError):
        PriorTables(counts[:, :, :5]).validate()
    with pytest.raises(ValueError):  # a clip that changes the number of contexts
        PriorTables(np.full((1, 1, num_contexts(5), 5), 1, dtype=np.uint16), context_clip=1).validate()
