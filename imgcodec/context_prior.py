"""The frozen context prior: integer probability tables indexed by already-decoded symbols.

Why integers: a range coder only decodes if encoder and decoder use *bit-identical*
probabilities. Probabilities computed in floating point by a network can differ in the last
bit across machines, thread counts or batch shapes. So the prior is trained as a small
network (``imgcodec.train.prior_model``) and then tabulated once into integer counts that ship with
the weights; at coding time the only arithmetic is integer indexing (the approach of
tensorflow/compression's integer CDF tables, here for a context model).

Context of the symbol at (channel c, row i, column j): the symbols of the same channel at
(i, j-1) (left) and (i-1, j) (top), or ``OUTSIDE`` beyond the border. With a context clip k,
each neighbour counts only as one of the 2k+1 centers around the middle (zero) center, larger
ones clipped to the outermost of those, so the tables grow with k^2 instead of L^2: large
values are rare, and their exact size says little about the next symbol. Symbols on one
anti-diagonal i + j = t depend only on the diagonal t - 1, so a decoder codes a whole
diagonal of every channel in one call (a wavefront): h + w - 1 calls per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Total of every quantized probability row; each symbol gets at least 1 (never impossible).
TABLE_TOTAL = 1 << 16


def context_symbol_map(num_centers: int, clip: int | None = None) -> np.ndarray:
    """What a neighbour contributes to the context: symbol 0..L-1, or OUTSIDE (= L), -> 0..B-1.

    Without a clip B = L + 1 and the map is the identity. With clip k the symbols
    mid-k .. mid+k (mid = (L-1)//2, the center that starts at zero) map to 0..2k, smaller and
    larger ones to the nearest end, and OUTSIDE to 2k+1 (B = 2k+2).
    """
    if clip is None:
        return np.arange(num_centers + 1, dtype=np.int64)
    mid = (num_centers - 1) // 2
    if not 0 <= clip <= mid:
        raise ValueError(f"context clip {clip} must be in 0..{mid} for {num_centers} centers")
    mapping = np.clip(np.arange(num_centers + 1), mid - clip, mid + clip) - (mid - clip)
    mapping[num_centers] = 2 * clip + 1
    return mapping.astype(np.int64)


def num_contexts(num_centers: int, clip: int | None = None) -> int:
    """B^2: left and top neighbour each take one of B context symbols (see context_symbol_map)."""
    return int(context_symbol_map(num_centers, clip).max() + 1) ** 2


def context_index(symbols: np.ndarray, num_centers: int, clip: int | None = None) -> np.ndarray:
    """Context id of every symbol. symbols: C,h,w ints in [0, L) -> C,h,w int64."""
    mapping = context_symbol_map(num_centers, clip)
    base = int(mapping.max() + 1)
    padded = np.pad(symbols.astype(np.int64), ((0, 0), (1, 0), (1, 0)), constant_values=num_centers)
    padded = mapping[padded]  # C,h+1,w+1 context symbols
    left = padded[:, 1:, :-1]  # C,h,w
    top = padded[:, :-1, 1:]  # C,h,w
    return left * base + top


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

    counts: np.ndarray  # levels,C,B^2,L uint16 (stored) / int64
    context_clip: int | None = None  # see context_symbol_map; None: B = L + 1

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
        expected = num_contexts(centers, self.context_clip)
        if contexts != expected:
            raise ValueError(f"prior table has {contexts} contexts, expected {expected}")
        sums = self.counts.astype(np.int64).sum(axis=-1)
        if np.any(sums != TABLE_TOTAL) or np.any(self.counts < 1):
            raise ValueError("prior table rows must be >= 1 and sum to TABLE_TOTAL")

    def context_map(self) -> np.ndarray:
        """Neighbour symbol (or OUTSIDE = L) -> context symbol, (L+1,) int64."""
        return context_symbol_map(self.num_centers, self.context_clip)

    def level_table(self, level: int) -> np.ndarray:
        """Probabilities for one level as exact dyadic float64: C,B^2,L."""
        return self.counts[level].astype(np.float64) / TABLE_TOTAL

    def min_bits_per_position(self, level: int) -> float:
        """The fewest bits any honest stream spends on one latent position (all channels): per
        channel, the cost of its likeliest symbol in its most confident context. A payload
        shorter than this times the positions cannot hold the image it claims."""
        best = self.counts[level].max(axis=(1, 2)).astype(np.float64)  # C: largest count anywhere
        return float(-np.log2(best / TABLE_TOTAL).sum())

    def cross_entropy_bits(self, symbols: np.ndarray, level: int) -> float:
        """Ideal code length of symbols (C,h,w) under this prior: what the coder should spend."""
        ctx = context_index(symbols, self.num_centers, self.context_clip)
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
