"""How a quantized tensor's symbols are entropy-coded: one table for all (i.i.d.), or
column-adaptive contexts (no torch here).

A tensor is read as a matrix: rows are its first dimension (output units, filters) and columns
everything else, or the transpose. Rows are coded in order. A symbol's context is the share of
non-background symbols already seen in its column, the Krichevsky-Trofimov estimate
(k + 1/2) / (i + 1) after i rows, on a square-root scale cut into B buckets; each bucket has its
own integer table; optionally (`previous`) the bucket is split by whether the symbol above, in
the previous row, is the background. In a first layer a column is one input (a pixel): inputs
the network ignores have columns of the background symbol (the one at 0, or near it), and a
column-wise context learns that after a few rows; along the transpose, consecutive rows are
neighbouring pixels, which the previous-row split uses. Contexts are integer arithmetic on
decoded symbols, so every decoder computes the same ones, and a row is one range-coder pass
(imgcodec.coder.RowDecoder). The encoder picks the orientation, B (1 = i.i.d.) and the split
with the smallest estimated size, tables included.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..coder import (BOUND_SHARE, STATE_BITS, RowDecoder, RowEncoder, RowModels, decode_iid, encode_iid,
                     min_bits_of_rows, probability_rows, require_length)
from ..context_prior import TABLE_TOTAL, quantize_probabilities
from ..errors import FormatError

#: Numbers of buckets the encoder tries (1: i.i.d., one table).
BUCKET_CHOICES = (1, 2, 4, 8, 16)
#: A row is one range-coder call: matrices with more rows are coded i.i.d., and a file that
#: claims such a matrix with contexts is refused (a few bytes must not buy hours of decoding).
MAX_CONTEXT_ROWS = 1 << 16
#: A decoder call with a ready model costs about as much as this many table entries of the
#: per-symbol models (0.5 us against 1.5-1.8 ns each, measured with constriction 0.5 on
#: alphabets of 64 to 4,000); decode_symbols takes the cheaper way row by row.
RUN_COST = 256


@dataclass(frozen=True)
class SymbolCoding:
    """A coded tensor's symbol stream and what its decoder needs besides the shape."""

    tables: np.ndarray  # B,R uint16: one row per context, each summing to 2^16, entries >= 1
    payload: bytes
    transposed: bool = False  # rows are the columns of the tensor's (first dim, rest) matrix
    background: int = 0  # the symbol whose absence the contexts count
    previous: bool = False  # tables 2b and 2b + 1: bucket b, symbol above background or not

    @property
    def contexts(self) -> int:
        return int(self.tables.shape[0])

    @property
    def buckets(self) -> int:
        return self.contexts // 2 if self.previous else self.contexts


def matrix_shape(shape: tuple[int, ...], transposed: bool) -> tuple[int, int]:
    """(rows, columns) of the matrix a tensor of this shape is coded as."""
    first = shape[0] if shape else 1
    rest = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    return (rest, first) if transposed else (first, rest)


def row_buckets(seen: np.ndarray, row: int | np.ndarray, buckets: int) -> np.ndarray:
    """Bucket of every column of row `row` (0-based; or a column of row numbers) given `seen`,
    the count of non-background symbols in each column's earlier rows:
    floor(B * sqrt((2k + 1) / (2 row + 2))), in integers."""
    x = (buckets * buckets * (2 * seen.astype(np.int64) + 1)) // (2 * row + 2)
    root = np.floor(np.sqrt(x.astype(np.float64))).astype(np.int64)
    root -= root * root > x  # exact integer square root whatever sqrt's last bit did
    root += (root + 1) * (root + 1) <= x
    return np.minimum(root, buckets - 1)


class _ColumnCounts:
    """What every context model of one matrix orientation shares (the encoder's view, all rows at
    once): each symbol's count of non-background symbols above it in its column, and whether the
    symbol just above is one."""

    def __init__(self, matrix: np.ndarray, background: int) -> None:
        other = (matrix != background).astype(np.int64)
        self.seen = np.zeros_like(other)
        np.cumsum(other[:-1], axis=0, out=self.seen[1:])
        self.above = np.zeros_like(other)
        self.above[1:] = other[:-1]
        self.rows = np.arange(matrix.shape[0], dtype=np.int64)[:, None]

    def contexts(self, buckets: int, previous: bool, bucket: np.ndarray | None = None) -> np.ndarray:
        """rows,cols table index of every symbol (`bucket`: row_buckets for these buckets, if known)."""
        bucket = row_buckets(self.seen, self.rows, buckets) if bucket is None else bucket
        return 2 * bucket + self.above if previous else bucket


def _histograms(symbols: np.ndarray, context: np.ndarray, contexts: int, size: int) -> np.ndarray:
    """B,R float64 counts of each symbol in each context."""
    flat = context.ravel().astype(np.int64) * size + symbols.ravel()
    return np.bincount(flat, minlength=contexts * size).reshape(contexts, size).astype(np.float64)


def _tables(hist: np.ndarray) -> np.ndarray:
    """B,R integer tables from each context's histogram (an unused context gets the overall one)."""
    hist = hist.copy()
    overall = hist.sum(axis=0)
    hist[hist.sum(axis=1) == 0] = overall
    return quantize_probabilities(hist / hist.sum(axis=1, keepdims=True)).astype(np.uint16)


def _cost_bytes(hist: np.ndarray, tables: np.ndarray) -> float:
    """Payload bytes these tables would give the symbols counted in hist (their cross-entropy)
    plus the tables' own bytes."""
    bits = -(hist * np.log2(tables.astype(np.float64) / TABLE_TOTAL)).sum()
    return float(bits) / 8 + tables.size * 2


def encode_symbols(symbols: np.ndarray, size: int, contexts: bool = True) -> SymbolCoding:
    """Symbols (a tensor's shape, ints in [0, size)) -> the smallest of i.i.d. and the
    column-context models (i.i.d. alone without `contexts`), coded."""
    flat = np.ascontiguousarray(symbols, dtype=np.int64).ravel()
    if flat.size and (flat.min() < 0 or flat.max() >= size):
        raise ValueError("symbols outside the table")
    counts = np.bincount(flat, minlength=size)
    background = int(np.argmax(counts))
    hist = counts[None, :].astype(np.float64)
    iid = _tables(hist)
    best: tuple[float, SymbolCoding, tuple[np.ndarray, _ColumnCounts, int, bool] | None] = (
        _cost_bytes(hist, iid), SymbolCoding(iid, b""), None)
    if contexts and symbols.ndim >= 2:
        for transposed in (False, True):
            matrix = flat.reshape(matrix_shape(symbols.shape, False))
            matrix = matrix.T if transposed else matrix
            if matrix.shape[0] > MAX_CONTEXT_ROWS:
                continue
            columns = _ColumnCounts(matrix, background)
            for buckets in BUCKET_CHOICES[1:]:
                bucket = row_buckets(columns.seen, columns.rows, buckets)
                for previous in (False, True):
                    hist = _histograms(matrix, columns.contexts(buckets, previous, bucket),
                                       buckets * (1 + previous), size)
                    tables = _tables(hist)
                    cost = _cost_bytes(hist, tables)
                    if cost < best[0]:
                        best = (cost, SymbolCoding(tables, b"", transposed, background, previous),
                                (matrix, columns, buckets, previous))
    _, model, chosen = best
    if chosen is None:
        return SymbolCoding(model.tables, encode_iid(flat, model.tables[0]))
    matrix, columns, buckets, previous = chosen
    context = columns.contexts(buckets, previous)
    encoder = RowEncoder()
    encoder.encode(matrix.ravel(), probability_rows(model.tables), context.ravel())
    return replace(model, payload=encoder.finish())


def decode_symbols(coding: SymbolCoding, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of encode_symbols: the symbols (int32) in the tensor's own order, flat. Raises
    FormatError on a payload too short for them (checked before decoding) or longer."""
    count = int(np.prod(shape, dtype=np.int64))
    if coding.contexts == 1:
        return decode_iid(coding.payload, count, coding.tables[0])
    require_length(coding.payload, count, coding.tables)
    min_bits = BOUND_SHARE * min_bits_of_rows(coding.tables)  # per symbol, at the least
    rows, cols = matrix_shape(shape, coding.transposed)
    if rows > MAX_CONTEXT_ROWS:
        raise FormatError(f"a tensor of {rows} rows cannot be context-coded; the file is corrupted or forged")
    decoder = RowDecoder(coding.payload, "payload", "the tensor's values")
    probabilities = probability_rows(coding.tables)
    models: RowModels | None = None
    alphabet = coding.tables.shape[1]
    matrix = np.empty((rows, cols), dtype=np.int32)
    seen = np.zeros(cols, dtype=np.int64)
    above = np.zeros(cols, dtype=np.int64)  # the previous row's symbol is not the background
    for row in range(rows):
        context = row_buckets(seen, row, coding.buckets)
        context = 2 * context + above if coding.previous else context
        runs = 1 + int(np.count_nonzero(np.diff(context)))
        if runs * RUN_COST < cols * alphabet:  # a model per run beats one per symbol
            models = models or RowModels(coding.tables)
            matrix[row] = decoder.decode_runs(models, context)
        else:
            matrix[row] = decoder.decode(probabilities, context)
        above = (matrix[row] != coding.background).astype(np.int64)
        seen += above
        if decoder.exhausted() and min_bits * cols * (rows - row - 1) > STATE_BITS:
            raise FormatError("payload ends before the tensor does; the file is truncated or corrupted")
    decoder.finish()
    return (matrix.T if coding.transposed else matrix).ravel()
