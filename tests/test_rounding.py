"""Tests for imgcodec.rounding: nearest and rate-distortion optimised choice of centers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from imgcodec.context_prior import TABLE_TOTAL, PriorTables, context_index, quantize_probabilities
from imgcodec.rounding import nearest_symbols, rd_choice, rd_symbols

LEVEL = 1


def random_setup(seed: int, channels: int = 3, height: int = 5, width: int = 7, num_centers: int = 7,
                 clip: int | None = 2):
    """A random prior (2 levels), sorted uneven centers, weights and a latent spanning them."""
    rng = np.random.default_rng(seed)
    centers = np.sort(rng.uniform(-4, 4, num_centers)).astype(np.float32)
    centers[num_centers // 2] = 0.0
    centers = np.sort(centers)
    contexts = (2 * clip + 2) ** 2 if clip is not None else (num_centers + 1) ** 2
    probs = rng.dirichlet(np.full(num_centers, 0.5), size=(2, channels, contexts))
    prior = PriorTables(quantize_probabilities(probs), clip)
    prior.validate()
    thresholds = (centers[1:] + centers[:-1]) / 2
    latent = rng.uniform(centers[0] - 1, centers[-1] + 1, (channels, height, width)).astype(np.float32)
    weights = rng.uniform(0.2, 2.0, channels)
    return centers, thresholds, prior, latent, weights


def reference_rd(latent, centers, thresholds, prior, level, weights, tau, lookahead):
    """Symbol by symbol in raster order: each symbol's left and top neighbours are already final
    in raster order as in the wavefront order, so the greedy choices must be the same. The
    lookahead prices the right and lower neighbours at their nearest centers, in the contexts the
    choice gives them (their other context neighbour also at its nearest center)."""
    channels, height, width = latent.shape
    chosen = np.zeros(latent.shape, dtype=np.int64)
    nearest = nearest_symbols(latent, thresholds)
    mapping = prior.context_map()
    base = int(mapping.max() + 1)
    outside = len(centers)

    def near(c: int, i: int, j: int) -> int:
        return int(nearest[c, i, j]) if 0 <= i < height and 0 <= j < width else outside

    def price(c: int, left: int, top: int, s: int) -> float:
        if s == outside:
            return 0.0
        return -math.log2(prior.counts[level, c, mapping[left] * base + mapping[top], s] / TABLE_TOTAL)

    for c in range(channels):
        for i in range(height):
            for j in range(width):
                left = chosen[c, i, j - 1] if j > 0 else outside
                top = chosen[c, i - 1, j] if i > 0 else outside
                ctx = mapping[left] * base + mapping[top]
                z = float(latent[c, i, j])
                first = int(nearest[c, i, j])
                second = min(max(first + (1 if z > centers[first] else -1), 0), len(centers) - 1)

                def cost(s: int) -> float:
                    bits = -math.log2(prior.counts[level, c, ctx, s] / TABLE_TOTAL)
                    if lookahead:
                        bits += price(c, s, near(c, i - 1, j + 1), near(c, i, j + 1))
                        bits += price(c, near(c, i + 1, j - 1), s, near(c, i + 1, j))
                    return weights[c] * (z - float(centers[s])) ** 2 + tau * bits

                chosen[c, i, j] = second if cost(second) < cost(first) else first
    return chosen


def test_nearest_symbols_pick_the_closest_center() -> None:
    centers, thresholds, _, latent, _ = random_setup(0)
    symbols = nearest_symbols(latent, thresholds)
    brute = np.abs(latent[..., None] - centers).argmin(axis=-1)
    assert symbols.dtype == np.int32 and np.array_equal(symbols, brute)


@pytest.mark.parametrize("tau", [0.0, -1.0])
def test_tau_zero_is_nearest_rounding(tau: float) -> None:
    centers, thresholds, prior, latent, weights = random_setup(1)
    assert np.array_equal(rd_symbols(latent, centers, thresholds, prior, LEVEL, weights, tau),
                          nearest_symbols(latent, thresholds))


@pytest.mark.parametrize("lookahead", [True, False])
@pytest.mark.parametrize("seed,clip,tau", [(2, 2, 0.05), (3, None, 0.3), (4, 1, 3.0), (5, 2, 30.0)])
def test_wavefront_greedy_matches_the_symbol_by_symbol_definition(seed: int, clip: int | None, tau: float,
                                                                  lookahead: bool) -> None:
    centers, thresholds, prior, latent, weights = random_setup(seed, clip=clip)
    fast = rd_symbols(latent, centers, thresholds, prior, LEVEL, weights, tau, lookahead)
    assert fast.dtype == np.int32 and fast.shape == latent.shape
    expected = reference_rd(latent, centers, thresholds, prior, LEVEL, weights, tau, lookahead)
    assert np.array_equal(fast, expected)
    if lookahead and tau >= 3.0:  # the lookahead changes decisions, so the test tells them apart
        assert not np.array_equal(fast, rd_symbols(latent, centers, thresholds, prior, LEVEL, weights, tau, False))


def test_choices_stay_next_to_the_value_and_save_bits() -> None:
    centers, thresholds, prior, latent, weights = random_setup(6, channels=4, height=12, width=12)
    nearest = nearest_symbols(latent, thresholds)
    bits = {}
    for tau in (0.0, 0.1, 1.0, 100.0):
        symbols = rd_symbols(latent, centers, thresholds, prior, LEVEL, weights, tau)
        assert np.all(np.abs(symbols - nearest) <= 1)
        # A moved symbol is on the other side of its value from the nearest center.
        moved = symbols != nearest
        assert np.all((centers[symbols] - latent)[moved] * (centers[nearest] - latent)[moved] <= 0)
        ctx = context_index(symbols, len(centers), prior.context_clip)
        chan = np.arange(symbols.shape[0])[:, None, None]
        bits[tau] = float(-np.log2(prior.counts[LEVEL][chan, ctx, symbols] / TABLE_TOTAL).sum())
        assert bits[tau] == pytest.approx(prior.cross_entropy_bits(symbols, LEVEL))
    assert bits[100.0] < bits[1.0] < bits[0.0]


def test_rd_choice_minimises_each_values_own_cost() -> None:
    """rd_choice (a pass whose rows are known) keeps, of the nearest center and the one across
    the value, the one with the lower weight * change^2 + tau * bits: checked value by value."""
    rng = np.random.default_rng(3)
    centers = np.sort(rng.uniform(-4, 4, 9))
    values = rng.uniform(centers[0] - 1, centers[-1] + 1, (3, 40))  # G,n
    nearest = nearest_symbols(values, (centers[1:] + centers[:-1]) / 2)
    counts = quantize_probabilities(rng.dirichlet(np.full(len(centers), 0.5), size=5))  # R,L
    bits = -np.log2(counts / TABLE_TOTAL)
    rows = rng.integers(0, 5, values.shape)
    weights = np.array([0.5, 1.0, 4.0])
    assert np.array_equal(rd_choice(values, nearest, centers, weights, 0.0, counts, rows), nearest)
    for tau in (0.05, 0.5, 50.0):
        chosen = rd_choice(values, nearest, centers, weights, tau, counts, rows)
        for (g, i), symbol in np.ndenumerate(chosen):
            v, n = values[g, i], nearest[g, i]
            across = min(max(n + 1 if v > centers[n] else n - 1, 0), len(centers) - 1)
            cost = {s: weights[g] * (v - centers[s]) ** 2 + tau * bits[rows[g, i], s] for s in (n, across)}
            assert symbol in cost and cost[symbol] <= min(cost.values())
    cheap = rd_choice(values, nearest, centers, weights, 50.0, counts, rows)
    assert bits[rows, cheap].sum() < bits[rows, nearest].sum()
