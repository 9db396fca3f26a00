"""Range coding of center indices with constriction, driven by the frozen context prior.

The only module that imports constriction. Symbols are coded in wavefront order (one
anti-diagonal of every channel per call, see ``context_prior``), with the batched categorical
model family: the decoder makes h + w - 1 calls, never one call per symbol. The probabilities
passed to constriction are integer counts / 2^16, exact in float64, and depend only on integer
tables and symbols already decoded, so every machine decodes the same symbols.
"""
from __future__ import annotations

import numpy as np
import constriction

from .context_prior import TABLE_TOTAL, PriorTables, context_index, wavefront_order
from .errors import FormatError

ENCODE_CHUNK = 1 << 20  # symbols per encoder call: 2^20 x 16 float64 probabilities = 128 MiB
#: constriction quantizes the tables' probabilities again (to its own precision), so a symbol may
#: cost a little less than the table says; the length checks credit only this share of the bound.
BOUND_SHARE = 0.5
#: Bits a range decoder may still hold in its state when it has read every word (64-bit state).
STATE_BITS = 128


def _family() -> "constriction.stream.model.Categorical":
    # perfect=False: fast, deterministic quantization of the (already exact) probabilities.
    return constriction.stream.model.Categorical(perfect=False)


def encode_symbols(symbols: np.ndarray, prior: PriorTables, level: int) -> bytes:
    """symbols: C,h,w ints in [0, L) -> range-coded bytes (a stream of little-endian u32 words)."""
    channels, height, width = symbols.shape
    if channels != prior.num_channels or symbols.min(initial=0) < 0 or symbols.max(initial=0) >= prior.num_centers:
        raise ValueError("symbols do not match the prior's channels or alphabet")
    table = prior.level_table(level)  # C,K,L
    ctx = context_index(symbols, prior.num_centers, prior.context_clip)  # C,h,w
    # Wavefront order: positions diagonal by diagonal (row-major within one), and at each
    # position all channels; exactly the order decode_symbols produces them in.
    diag = (np.arange(height)[:, None] + np.arange(width)[None, :]).ravel()  # h*w
    pos_order = np.argsort(diag, kind="stable")
    flat_sym = symbols.reshape(channels, -1).T[pos_order].ravel().astype(np.int32)  # h*w*C
    flat_ctx = ctx.reshape(channels, -1).T[pos_order].ravel()
    flat_chan = np.tile(np.arange(channels), height * width)
    encoder = constriction.stream.queue.RangeEncoder()
    for start in range(0, flat_sym.size, ENCODE_CHUNK):  # bounded memory for huge images
        part = slice(start, start + ENCODE_CHUNK)
        probs = table[flat_chan[part], flat_ctx[part]]  # n,L
        encoder.encode(flat_sym[part], _family(), probs)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_symbols(payload: bytes, shape: tuple[int, int, int], prior: PriorTables, level: int,
                   dtype: type = np.int32) -> np.ndarray:
    """Inverse of encode_symbols: bytes -> C,h,w symbols (int32, or the given dtype: uint8 takes
    a quarter of the memory). Raises FormatError on garbage."""
    channels, height, width = shape
    if prior.num_centers > 255:
        raise ValueError("decode_symbols stores symbols as uint8")
    if len(payload) % 4:
        raise FormatError("latent payload is not a whole number of 32-bit words; the file is corrupted")
    # Bounded work for any input: a payload too short for the positions it claims is refused
    # before anything is decoded (a 45-byte file claiming 16384x16384 pixels, say).
    min_bits = BOUND_SHARE * prior.min_bits_per_position(level)  # per position, all channels
    positions = height * width
    if 8 * len(payload) + STATE_BITS < min_bits * positions:
        raise FormatError(f"latent payload of {len(payload)} bytes is too short for a {width}x{height} latent; "
                          "the file is corrupted or forged")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    table = prior.level_table(level)  # C,K,L
    num = prior.num_centers
    # uint8 symbols (L <= 255): a header claiming a huge image costs 1 byte per symbol here.
    padded = np.full((channels, height + 1, width + 1), num, dtype=np.uint8)  # OUTSIDE border
    chan_ids = np.arange(channels)
    mapping = prior.context_map()  # neighbour symbol -> context symbol
    base = int(mapping.max() + 1)
    remaining = positions
    try:
        for rows, cols in wavefront_order(height, width):
            left = mapping[padded[:, rows + 1, cols]]  # C,n
            top = mapping[padded[:, rows, cols + 1]]
            ctx = left * base + top
            probs = table[chan_ids[None, :], ctx.T].reshape(-1, num)  # n*C,L position-major
            decoded = decoder.decode(_family(), probs)
            padded[:, rows + 1, cols + 1] = decoded.reshape(len(rows), channels).T
            remaining -= len(rows)
            # Every word read while more symbols remain than its state can explain: the payload
            # was cut short, and the rest would be decoded from nothing.
            if remaining and decoder.maybe_exhausted() and min_bits * remaining > STATE_BITS:
                raise FormatError("latent payload ends before the image does; the file is truncated or corrupted")
    except (ValueError, RuntimeError, AssertionError) as exc:  # constriction reports bad streams
        raise FormatError(f"latent payload cannot be decoded ({exc}); the file is corrupted") from exc
    if not decoder.maybe_exhausted():
        raise FormatError("latent payload does not end with the image's symbols (cut short, extended or "
                          "corrupted)")
    inner = padded[:, 1:, 1:]
    return inner if np.dtype(dtype) == np.uint8 else inner.astype(dtype)  # a view: no second copy


def encode_iid(symbols: np.ndarray, counts: np.ndarray) -> bytes:
    """Symbols (any shape, ints in [0, len(counts))) coded i.i.d. with one integer table whose
    counts sum to 2^16 (every entry >= 1): the weight codec's entropy coder (imgcodec.weights)."""
    flat = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
    if flat.size and (flat.min() < 0 or flat.max() >= len(counts)):
        raise ValueError("symbols outside the table")
    model = constriction.stream.model.Categorical(counts.astype(np.float64) / TABLE_TOTAL, perfect=False)
    encoder = constriction.stream.queue.RangeEncoder()
    for start in range(0, flat.size, ENCODE_CHUNK):
        encoder.encode(flat[start:start + ENCODE_CHUNK], model)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_iid(payload: bytes, count: int, counts: np.ndarray) -> np.ndarray:
    """Inverse of encode_iid: `count` symbols, int32. Raises FormatError on a payload that is too
    short for them (before decoding) or that does not end with them."""
    if len(payload) % 4:
        raise FormatError("payload is not a whole number of 32-bit words; the file is corrupted")
    require_length(payload, count, counts)
    model = constriction.stream.model.Categorical(counts.astype(np.float64) / TABLE_TOTAL, perfect=False)
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    out = np.empty(count, dtype=np.int32)
    try:
        for start in range(0, count, ENCODE_CHUNK):
            n = min(ENCODE_CHUNK, count - start)
            out[start:start + n] = decoder.decode(model, n)
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"payload cannot be decoded ({exc}); the file is corrupted") from exc
    if not decoder.maybe_exhausted():
        raise FormatError("payload does not end with the values it holds; the file is corrupted")
    return out


#: Symbols per constriction call when every symbol brings its own probability row: 8 Ki rows of
#: shae-v9's 83 float64 probabilities are 5.3 MiB, which the allocator reuses from chunk to
#: chunk. Chunks of 64 Ki rows (42 MiB) were mapped afresh each time, and the page faults made a
#: process's first 768x512 encode about 0.3 s slower (docs/bench/speed-detail.md).
ROW_CHUNK = 1 << 13


def probability_rows(counts: np.ndarray) -> np.ndarray:
    """Integer tables K,L (each row summing to TABLE_TOTAL) -> the rows RowEncoder and RowDecoder
    code with, float64 count / TABLE_TOTAL (exact: a power of two), read-only. Made once per
    table set or per coding pass (rows_in_use), not per symbol: converting the gathered rows
    symbol by symbol cost more than the range coding."""
    rows = np.asarray(counts).astype(np.float64) / TABLE_TOTAL
    rows.setflags(write=False)
    return rows


def rows_in_use(counts: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The probability rows (probability_rows) of only the tables that `ids` pick from integer
    tables K,L, and the ids renumbered into them (same shape): the rows a coding pass needs.
    shae-v11's latent tables are 60,480 rows of 109 counts, 53 MB as float64, of which a
    megapixel's passes use 900 to 6,700; converting all of them cost a process more time than
    the range coding itself (fresh pages), converting the pass's rows about a millisecond. The
    coder sees the same probabilities either way."""
    ids = np.asarray(ids)
    used = np.zeros(counts.shape[0], dtype=bool)
    used[ids.ravel()] = True
    renumber = np.cumsum(used) - 1  # K: each used table's position among the used ones
    return probability_rows(counts[used]), renumber[ids]


def _check_rows(rows: np.ndarray) -> None:
    if rows.dtype != np.float64 or rows.ndim != 2:
        raise TypeError("probability rows must be float64 K,L from probability_rows")


class RowEncoder:
    """One range-coded stream built pass by pass, each symbol with its own probability row
    (integer counts summing to 2^16, every entry >= 1), chosen from a set of tables: shae-v9's
    side latent and channel groups, whose rows the decoder can only pick after the passes before
    (RowDecoder), and the context-coded weights of .shaw files. Rows are gathered chunk by chunk,
    so memory does not grow with the number of symbols times the alphabet."""

    def __init__(self) -> None:
        self.encoder = constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> None:
        """symbols: n ints; rows: K,L from probability_rows; ids: n row numbers into rows."""
        _check_rows(rows)
        flat = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        ids = np.asarray(ids).ravel()
        if ids.size != flat.size or (flat.size and (flat.min() < 0 or flat.max() >= rows.shape[1])):
            raise ValueError("symbols do not match their probability rows")
        for start in range(0, flat.size, ROW_CHUNK):
            part = slice(start, start + ROW_CHUNK)
            self.encoder.encode(flat[part], _family(), rows[ids[part]])

    def finish(self) -> bytes:
        return self.encoder.get_compressed().astype("<u4").tobytes()


class RowDecoder:
    """Reads a RowEncoder stream back pass by pass. The caller checks the payload's length
    against the passes' minimum cost first (min_bits_of_rows); `finish` requires that the
    stream ends with the last symbol. A payload cut short is the caller's to catch (shae-v9's
    end mark, imgcodec.hyperprior): constriction's decoder reads zeros past the end."""

    def __init__(self, payload: bytes, what: str = "latent payload", holds: str = "the image's symbols") -> None:
        """`what` and `holds` name the stream in error messages."""
        self.what, self.holds = what, holds
        if len(payload) % 4:
            raise FormatError(f"{what} is not a whole number of 32-bit words; the file is corrupted")
        self.decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))

    def decode(self, rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """One symbol per row number (ids: n into rows K,L from probability_rows) -> n int32."""
        _check_rows(rows)
        ids = np.asarray(ids).ravel()
        out = np.empty(ids.size, dtype=np.int32)
        try:
            for start in range(0, ids.size, ROW_CHUNK):
                part = slice(start, start + ROW_CHUNK)
                out[part] = self.decoder.decode(_family(), rows[ids[part]])
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise FormatError(f"{self.what} cannot be decoded ({exc}); the file is corrupted") from exc
        return out

    def decode_runs(self, models: "RowModels", ids: np.ndarray) -> np.ndarray:
        """decode(rows, ids) with models built once per table row: each run of equal ids is
        one call with one model, so the work no longer grows with ids.size times the alphabet
        (the batched family builds a model per symbol). Same symbols: both quantize the same
        probabilities with the same method."""
        ids = np.asarray(ids).ravel()
        out = np.empty(ids.size, dtype=np.int32)
        if not ids.size:
            return out
        starts = np.flatnonzero(np.diff(ids)) + 1
        bounds = np.concatenate([[0], starts, [ids.size]]).tolist()
        firsts = ids[bounds[:-1]].tolist()
        try:
            for start, end, row in zip(bounds[:-1], bounds[1:], firsts):
                out[start:end] = self.decoder.decode(models.models[row], end - start)
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise FormatError(f"{self.what} cannot be decoded ({exc}); the file is corrupted") from exc
        return out

    def exhausted(self) -> bool:
        """Whether every word has been read (what is left may be the state's last bits)."""
        return bool(self.decoder.maybe_exhausted())

    def finish(self) -> None:
        if not self.decoder.maybe_exhausted():
            raise FormatError(f"{self.what} does not end with {self.holds} (cut short, extended or corrupted)")


class RowModels:
    """One constriction model per row of integer tables (K,L, each summing to 2^16), built once,
    for RowDecoder.decode_runs."""

    def __init__(self, counts: np.ndarray) -> None:
        rows = probability_rows(counts)
        self.models = [constriction.stream.model.Categorical(row, perfect=False) for row in rows]


def require_length(payload: bytes, count: int, counts: np.ndarray) -> None:
    """Bounded work for any input: FormatError when `payload` is too short for `count` symbols
    coded with rows of these tables, even at their likeliest entries (checked before decoding)."""
    if 8 * len(payload) + STATE_BITS < BOUND_SHARE * min_bits_of_rows(counts) * count:
        raise FormatError(f"payload of {len(payload)} bytes is too short for {count} values; the file is corrupted")


def min_bits_of_rows(counts: np.ndarray) -> float:
    """The fewest bits any symbol coded with one of these rows can cost (its likeliest entry)."""
    return float(-np.log2(counts.max() / TABLE_TOTAL)) if counts.size else 0.0
