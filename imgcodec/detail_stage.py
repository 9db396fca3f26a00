"""A residual stage over a shipped model's decoded image (no torch): what the model's transforms
cannot draw, coded per 16x16 block.

shae-v8's 35 latent numbers per 8x8 block cap it near 36 dB on detailed photos (its synthesis of
the unquantized latent gets no closer). The stage codes the image minus the model's decoded
image (closed loop, as Toderici et al.'s residual coders, CVPR 2017): each 16x16x3 block is
projected on D fixed orthonormal vectors (the principal components of such residuals on training
photos, i.e. a KLT), each coefficient rounded to a multiple of the level's step (with a dead zone)
and range-coded with one of a set of frozen integer tables, a discretized Laplacian per scale. The
table of a coefficient is chosen by its level, its channel and the block's activity, an integer
the decoder already has: how far the base model's symbols under the block lie from zero. So the
symbols decode identically everywhere; only the added pixels are float.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .coder import BOUND_SHARE, STATE_BITS, RowDecoder, RowEncoder, min_bits_of_rows
from .context_prior import TABLE_TOTAL, quantize_probabilities
from .errors import FormatError

BLOCK = 16  #: pixels per block side; a block is BLOCK x BLOCK x 3 values
VALUES = 3 * BLOCK * BLOCK
LIMIT = 31  #: symbols lie in -LIMIT..LIMIT (the encoder clips; the tables have 2 LIMIT + 1 entries)
ACTIVITY_BINS = 10  #: activity contexts: floor(log2(1 + sum of |symbol - zero|)), capped
#: the tables' scales (mean absolute coefficient, in steps), log-uniform
SCALE_MIN, SCALE_MAX, SCALE_CELLS = 0.005, 16.0, 64


def scale_grid() -> np.ndarray:
    """The SCALE_CELLS scales of the frozen tables, float64."""
    return np.exp(np.linspace(np.log(SCALE_MIN), np.log(SCALE_MAX), SCALE_CELLS))


def laplace_tables(scales: np.ndarray) -> np.ndarray:
    """One integer table per scale b: a Laplacian of mean absolute value b integrated over the
    unit bins around -LIMIT..LIMIT, the tails folded into the end bins; counts >= 1 summing to
    TABLE_TOTAL (computed once, when a stage is built, and stored)."""
    edges = np.arange(-LIMIT - 0.5, LIMIT + 1.0)  # 2 LIMIT + 2
    b = np.asarray(scales, dtype=np.float64)[:, None]
    tail = 0.5 * np.exp(-np.abs(edges) / b)  # mass beyond each edge, on its side
    cdf = np.where(edges < 0, tail, 1 - tail)
    cdf[:, 0], cdf[:, -1] = 0.0, 1.0
    return quantize_probabilities(np.diff(cdf, axis=1)).astype(np.uint16)


def to_blocks(image: np.ndarray) -> np.ndarray:
    """H,W,3 (multiples of BLOCK) -> hb,wb,VALUES, each block laid out as channel, row, column."""
    h, w = image.shape[0] // BLOCK, image.shape[1] // BLOCK
    return image.reshape(h, BLOCK, w, BLOCK, 3).transpose(0, 2, 4, 1, 3).reshape(h, w, VALUES)


def from_blocks(blocks: np.ndarray) -> np.ndarray:
    """Inverse of to_blocks: hb,wb,VALUES -> hb*BLOCK, wb*BLOCK, 3."""
    h, w = blocks.shape[:2]
    return blocks.reshape(h, w, 3, BLOCK, BLOCK).transpose(0, 3, 1, 4, 2).reshape(h * BLOCK, w * BLOCK, 3)


def block_activity(symbols: np.ndarray, zero: int, hb: int, wb: int, cells: int) -> np.ndarray:
    """The base model's symbols C,h,w (sorted centers; `zero` the index of the center at 0) ->
    each block's activity context, hb,wb int64 in 0..ACTIVITY_BINS-1. A block covers `cells` x
    `cells` latent positions (2 for shae-v8's latent at 1/8); positions beyond the latent count
    as zero."""
    _, h, w = symbols.shape
    distance = np.abs(symbols.astype(np.int64) - zero).sum(axis=0)  # h,w
    padded = np.zeros((hb * cells, wb * cells), dtype=np.int64)
    rows, cols = min(h, hb * cells), min(w, wb * cells)
    padded[:rows, :cols] = distance[:rows, :cols]
    total = padded.reshape(hb, cells, wb, cells).sum(axis=(1, 3))
    return np.minimum(np.floor(np.log2(1.0 + total)).astype(np.int64), ACTIVITY_BINS - 1)


@dataclass(frozen=True)
class DetailStage:
    """The frozen stage of one model (`detail.npz`)."""

    basis: np.ndarray  # D,VALUES float32, orthonormal rows
    steps: np.ndarray  # levels float32: the rounding step (pixel units in [0, 1]); 0 = no stage
    deadzone: float  # a coefficient rounds to k only from |c| / step >= k - 0.5 + deadzone
    table_ids: np.ndarray  # levels,ACTIVITY_BINS,D uint8: the table of each context
    tables: np.ndarray  # SCALE_CELLS,2 LIMIT + 1 uint16

    def __post_init__(self) -> None:
        d = self.basis.shape[0]
        levels = len(self.steps)
        if self.basis.shape != (d, VALUES) or not 0 < d <= VALUES:
            raise ValueError(f"basis must be D,{VALUES}")
        if self.table_ids.shape != (levels, ACTIVITY_BINS, d) or self.table_ids.max(initial=0) >= len(self.tables):
            raise ValueError("table ids do not match the levels, contexts, channels and tables")
        if self.tables.shape[1] != 2 * LIMIT + 1 or np.any(self.tables.astype(np.int64).sum(axis=1) != TABLE_TOTAL) \
                or np.any(self.tables == 0):
            raise ValueError(f"tables must have {2 * LIMIT + 1} counts >= 1 summing to {TABLE_TOTAL}")
        if np.any(~np.isfinite(self.steps)) or np.any(self.steps < 0) or not 0 <= self.deadzone < 0.5:
            raise ValueError("steps must be finite and >= 0, the dead zone in [0, 0.5)")

    @property
    def channels(self) -> int:
        return int(self.basis.shape[0])

    def active(self, level: int) -> bool:
        """Whether files of this level (0-based) carry the stage."""
        return bool(self.steps[level] > 0)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> "DetailStage":
        with np.load(path) as npz:
            return cls(npz["basis"].astype(np.float32), npz["steps"].astype(np.float32), float(npz["deadzone"]),
                       npz["table_ids"].astype(np.uint8), npz["tables"].astype(np.uint16))

    def save(self, path: Path) -> str:
        """Write detail.npz; returns its sha256."""
        with open(path, "wb") as f:
            np.savez_compressed(f, basis=self.basis.astype(np.float32), steps=self.steps.astype(np.float32),
                                deadzone=np.float64(self.deadzone), table_ids=self.table_ids.astype(np.uint8),
                                tables=self.tables.astype(np.uint16))
        return hashlib.sha256(path.read_bytes()).hexdigest()

    # ------------------------------------------------------------------------------------------
    def coefficients(self, residual: np.ndarray) -> np.ndarray:
        """residual H,W,3 float (multiples of BLOCK) -> hb,wb,D float32 projections."""
        return to_blocks(np.asarray(residual, dtype=np.float32)) @ self.basis.T

    def symbols(self, residual: np.ndarray, level: int) -> np.ndarray:
        """The encoder's rounding: residual H,W,3 -> hb,wb,D int32 in -LIMIT..LIMIT."""
        scaled = self.coefficients(residual) / self.steps[level]
        rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5 - self.deadzone)
        return np.clip(rounded, -LIMIT, LIMIT).astype(np.int32)

    def _rows(self, activity: np.ndarray, level: int) -> np.ndarray:
        """hb,wb activity -> hb*wb*D table numbers, in the symbols' order."""
        return self.table_ids[level][activity.reshape(-1)].reshape(-1)

    def bits(self, symbols: np.ndarray, activity: np.ndarray, level: int) -> float:
        """What the coder will spend on these symbols (ideal code length under the tables)."""
        counts = self.tables[self._rows(activity, level), symbols.reshape(-1) + LIMIT]
        return float(-np.log2(counts / TABLE_TOTAL).sum())

    def encode(self, symbols: np.ndarray, activity: np.ndarray, level: int) -> bytes:
        """hb,wb,D symbols -> the stage's payload."""
        encoder = RowEncoder()
        encoder.encode(symbols.reshape(-1) + LIMIT, self.tables, self._rows(activity, level))
        return encoder.finish()

    def decode(self, payload: bytes, activity: np.ndarray, level: int) -> np.ndarray:
        """Inverse of encode (activity hb,wb) -> hb,wb,D int32. FormatError for a payload too
        short for that many symbols (checked before decoding) or one that does not end with them."""
        hb, wb = activity.shape
        count = hb * wb * self.channels
        if 8 * len(payload) + STATE_BITS < BOUND_SHARE * min_bits_of_rows(self.tables) * count:
            raise FormatError(f"detail payload of {len(payload)} bytes is too short for {count} values; "
                              "the file is corrupted")
        decoder = RowDecoder(payload, "detail payload", "the image's residual")
        values = decoder.decode(self.tables, self._rows(activity, level))
        decoder.finish()
        return (values - LIMIT).reshape(hb, wb, self.channels)

    def pixels(self, symbols: np.ndarray, level: int) -> np.ndarray:
        """hb,wb,D symbols (some block rows) -> the residual they draw, rows*BLOCK, wb*BLOCK, 3 float32."""
        return from_blocks((symbols.astype(np.float32) * self.steps[level]) @ self.basis)
