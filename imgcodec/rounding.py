"""Encoder-side choice of center indices: nearest center, or rate-distortion optimised rounding.

Training snaps each latent value to its nearest center (Agustsson et al. 2017, Sec. 3.1), and
so does the plain encoder. But the prior prices symbols unequally: a value that sits between
two centers can often take the cheaper one for a small loss in quality. Classical encoders
exploit this as rate-distortion optimised quantization (RDOQ, e.g. in HEVC reference encoders;
Sullivan & Wiegand, "Rate-distortion optimization for video compression", IEEE Signal
Processing Magazine 1998, give the Lagrangian form used here). Each latent value z of channel c
picks, of its nearest center and the next center on the other side of z, the one minimising

    (inverse_gain[c] * (z - center))^2
        + tau * (bits(center | left, top) + bits(right | center, ...) + bits(below | ..., center))

where bits come from the model's frozen integer tables and inverse_gain[c] scales a change of
the quantized latent to what the decoder sees. Symbols are chosen in the coder's wavefront
order, so a symbol's own context is final when it is priced; the last two terms look ahead at
the right and lower neighbours, whose contexts the choice sets (taken at their nearest centers;
on shae-v7's training crops this lookahead doubled the saving of the greedy choice). tau is set
per quality level by ``scripts/tune_rounding.py`` on training photos; tau = 0 is nearest
rounding. Only the
encoder's choice changes: the file format, the decoder and the probabilities are the same.
"""
from __future__ import annotations

import numpy as np

from .context_prior import TABLE_TOTAL, PriorTables, wavefront_order


def nearest_symbols(latent: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Index of the nearest sorted center for every value. latent: C,h,w -> C,h,w int32."""
    return np.searchsorted(thresholds, latent).astype(np.int32)


def rd_symbols(latent: np.ndarray, centers: np.ndarray, thresholds: np.ndarray, prior: PriorTables,
               level: int, weights: np.ndarray, tau: float, lookahead: bool = True) -> np.ndarray:
    """Rate-distortion optimised symbols (see the module docstring).

    latent: C,h,w gained latent (the values nearest_symbols would round); centers: L sorted;
    weights: C, the distortion per squared change of a latent value in each channel (the codec
    passes this level's squared inverse gains). Returns C,h,w int32, each entry the nearest
    center's index or its neighbour's on the other side of the value. lookahead: also price the
    right and lower neighbours' symbols in the contexts each choice gives them (those neighbours
    and their other context neighbours taken at their nearest centers).
    """
    nearest = nearest_symbols(latent, thresholds)  # C,h,w int32
    if tau <= 0:
        return nearest
    num_centers = len(centers)
    other = np.where(latent > centers[nearest], nearest + 1, nearest - 1)  # the center across z
    other = np.clip(other, 0, num_centers - 1).astype(np.int32)
    weight = np.asarray(weights, dtype=np.float64)[:, None]  # C,1
    bits = -np.log2(prior.counts[level].astype(np.float64) / TABLE_TOTAL)  # C,K,L
    mapping = prior.context_map()  # neighbour symbol (or OUTSIDE = L) -> context symbol
    base = int(mapping.max() + 1)
    channels, height, width = latent.shape
    chan = np.arange(channels)[:, None]  # C,1
    # Chosen symbols with an OUTSIDE border on the top and left, as the decoder keeps them.
    chosen = np.full((channels, height + 1, width + 1), num_centers, dtype=np.int32)
    # Nearest symbols with an OUTSIDE border all round, for the lookahead's neighbours.
    near = np.pad(nearest, ((0, 0), (1, 1), (1, 1)), constant_values=num_centers)
    zero_bits = np.concatenate([bits, np.zeros(bits.shape[:2] + (1,))], axis=2)  # OUTSIDE costs 0

    for rows, cols in wavefront_order(height, width):
        ctx = mapping[chosen[:, rows + 1, cols]] * base + mapping[chosen[:, rows, cols + 1]]  # C,n
        values = latent[:, rows, cols].astype(np.float64)  # C,n
        first, second = nearest[:, rows, cols], other[:, rows, cols]  # C,n
        cost_first = weight * (values - centers[first]) ** 2 + tau * bits[chan, ctx, first]
        cost_second = weight * (values - centers[second]) ** 2 + tau * bits[chan, ctx, second]
        if lookahead:
            # Right neighbour: context (this symbol, its top); lower one: (its left, this symbol).
            right, right_top = near[:, rows + 1, cols + 2], mapping[near[:, rows, cols + 2]]  # C,n
            below, below_left = near[:, rows + 2, cols + 1], mapping[near[:, rows + 2, cols]] * base
            for symbol, cost in ((first, cost_first), (second, cost_second)):
                cost += tau * (zero_bits[chan, mapping[symbol] * base + right_top, right]
                               + zero_bits[chan, below_left + mapping[symbol], below])
        chosen[:, rows + 1, cols + 1] = np.where(cost_second < cost_first, second, first)
    return np.ascontiguousarray(chosen[:, 1:, 1:])


def rd_choice(values: np.ndarray, nearest: np.ndarray, centers: np.ndarray, weights: np.ndarray,
              tau: float, counts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rate-distortion rounding of one coding pass whose table rows are already known (shae-v9's
    channel groups, imgcodec.hyperprior): each value keeps its nearest center or takes the one
    across the value, whichever has the lower weight * change^2 + tau * bits.

    values: G,... gained latent; nearest: G,... their nearest centers' indices; centers: L sorted;
    weights: G, the distortion per squared change in each channel; counts: R,L the frozen tables
    (counts out of TABLE_TOTAL); rows: G,... each value's row. Greedy: a choice is priced in its
    own row only (the rows of later groups, which read it through their context, are not looked
    at). Returns G,... int32."""
    if tau <= 0:
        return nearest
    other = np.where(values > centers[nearest], nearest + 1, nearest - 1)
    other = np.clip(other, 0, len(centers) - 1).astype(np.int32)
    weight = np.asarray(weights, dtype=np.float64).reshape((-1,) + (1,) * (values.ndim - 1))  # G,1,...
    values = values.astype(np.float64)

    def cost(symbols: np.ndarray) -> np.ndarray:
        bits = -np.log2(np.maximum(counts[rows, symbols], 1) / TABLE_TOTAL)
        return weight * (values - centers[symbols]) ** 2 + tau * bits

    return np.where(cost(other) < cost(nearest), other, nearest).astype(np.int32)
