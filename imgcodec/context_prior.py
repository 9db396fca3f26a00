"""The frozen context prior: integer probability tables indexed by already-decoded symbols.

Why integers: a range coder only decodes if encoder and decoder use *bit-identical*
probabilities. Probabilities computed in floating point by a network can differ in the last
bit across machines, thread counts or batch shapes. So the prior is trained as a small
network (``imgcodec.prior_model``) and then tabulated once into integer counts that ship with
the weights; at coding time the only arithmetic is integer indexing (the approach of
tensorflow/compression's integer CDF tables, here for a context model).

Context of the symbol at (channel c, row i, column j): the symbols of the same channel at
(i, j-1) (left) and (i-1, j) (top), or ``OUTSIDE`` beyond the border. Symbols on one
anti-diagonal i + j = t depend only on the diagonal t - 1, so a decoder codes a whole
diagonal of every channel in one call (a wavefront): h + w - 1 calls per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Total of every quantized probability row; each symbol gets at least 1 (never impossible).
TABLE_TOTAL = 1 << 16


def num_contexts(num_centers: int) -> int:
    """(L + 1)^2: left and top neighbour each take one of L symbols or OUTSIDE (= L)."""
    return (num_centers + 1) ** 2


def context_index(symbols: np.ndarray, num_centers: int) -> np.ndarray:
    """Context id of every symbol. symbols: C,h,w ints in [0, L) -> C,h,w int64."""
    outside = num_centers
    padded = np.pad(symbols.astype(np.int64), ((0, 0), (1, 0), (1, 0)), constant_values=outside)
    left = padded[:, 1:, :-1]  # C,h,w
    top = padded[:, :-1, 1:]  # C,h,w
    return left * (num_centers + 1) + top


def quantize_probabilities(probs: np.ndarray, total: int = TABLE_TOTAL) -> np.ndarray:
    """Float probability rows (..., L) -> integer counts (..., L) >= 1 summing exactly to total.

    Runs once at export time; the result is stored, so its own float rounding never reaches a
    decoder.
    """
    probs = np.asarray(probs, dtype=np.float64)
    num = probs.shape[-1]
    probs = probs / probs.sum(axis=-1, keepdims=True)
    counts = np.floor(probs * (total - num)).astype(np.int64) + 1
    deficit = total - counts.sum(axis=-1)  # >= 0, < num
    order = np.argsort(-(probs * (total - num) - np.floor(probs * (total - num))), axis=-1, kind="stable")
    ranks = np.argsort(order, axis=-1, kind="stable")
    counts += (ranks < deficit[..., None]).astype(np.int64)
    assert np.all(counts.sum(axis=-1) == total)
    return counts


@dataclass(frozen=True)
class PriorTables:
    """Integer tables: counts[level, channel, context, symbol], rows summing to TABLE_TOTAL."""

    counts: np.ndarray  # levels,C,(L+1)^2,L uint16 (stored) / int64

    @property
    def num_levels(self) -> int:
        return self.counts.shape[0]

    @property
    def num_channels(self) -> int:
        return self.counts.shape[1]

    @property
    def num_centers(self) -> int:
        return self.counts.shape[3]

    def validate(self) -> None:
        """Check shape and normalisation; a table that fails would make files undecodable."""
        levels, channels, contexts, centers = self.counts.shape
        if contexts != num_contexts(centers):
            raise ValueError(f"prior table has {contexts} contexts, expected {num_contexts(centers)}")
        sums = self.counts.astype(np.int64).sum(axis=-1)
        if np.any(sums != TABLE_TOTAL) or np.any(self.counts < 1):
            raise ValueError("prior table rows must be >= 1 and sum to TABLE_TOTAL")

    def level_table(self, level: int) -> np.ndarray:
        """Probabilities for one level as exact dyadic float64: C,(L+1)^2,L."""
        return self.counts[level].astype(np.float64) / TABLE_TOTAL

    def cross_entropy_bits(self, symbols: np.ndarray, level: int) -> float:
        """Ideal code length of symbols (C,h,w) under this prior: what the coder should spend."""
        ctx = context_index(symbols, self.num_centers)
        chan = np.arange(symbols.shape[0])[:, None, None]
        counts = self.counts[level][chan, ctx, symbols]
        return float(-np.log2(counts.astype(np.float64) / TABLE_TOTAL).sum())


def wavefront_order(height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Positions (rows, cols) of each anti-diagonal t = i + j, t = 0 .. h + w - 2."""
    diagonals = []
    for t in range(height + width - 1):
        rows = np.arange(max(0, t - width + 1), min(t, height - 1) + 1)
        diagonals.append((rows, t - rows))
    return diagonals
