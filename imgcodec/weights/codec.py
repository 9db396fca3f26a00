"""Data-free weight compression: per-tensor uniform quantization, entropy-coded (no torch here).

Each large floating-point tensor is quantized to the centers k * step (a uniform grid, the
special case of learned centers that needs no data), with a dead zone that rounds small values
to 0 (pruning without a separate mask); the integer symbols are range-coded against the
tensor's own histogram, stored as an integer table. The step is a common multiple `s` of each
tensor's RMS, and `s` is searched so that the file meets a target bits per weight or a target
size. Small, integer and 1-D tensors (biases, norms, buffers) are stored exactly.

Where the caller has measured how much each tensor's rounding costs at the network's output
(imgcodec.weights.sensitivity), the steps follow that instead of the RMS: with g_i the output
error per unit of noise variance in each of tensor i's n_i weights, rounding error Δ_i²/12 and
rate n_i·(h_i - log2 Δ_i), the Lagrangian optimum of error + λ·rate is Δ_i ∝ sqrt(n_i / g_i)
(the classic high-rate bit allocation, as in the reverse water-filling of Cover & Thomas 10.3.3).

Decoding is `(symbol + offset) * step` in float32: the same floats on every machine.

A 16-bit table codes an alphabet of thousands poorly (every entry holds at least 1/65536 of the
probability, used or not), so a step fine enough to need more than SPLIT_ABOVE levels codes each
symbol's high part against a table of at most HIGH_ALPHABET entries and its low bits raw
(CODEC_FINE): what near-lossless precision, 10 or more bits per weight, needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import FormatError
from .container import (CODEC_EXACT16, CODEC_EXACT32, CODEC_CODEBOOK, CODEC_FINE, CODEC_FLOAT16, CODEC_GRAPH, CODEC_RAW,
                        CODEC_UNIFORM, MAX_LOW_BITS, SPLIT_CODECS, Record, low_length, pack)
from .symbols import SymbolCoding, decode_symbols, encode_symbols

FLOAT_DTYPES = ("<f4", "<f2", "<f8", "bfloat16")
SMALL_FLOATS = ("exact", "float16")
HALF_MAX = 65504.0
#: Alphabets larger than this are split into a coded high part and raw low bits (CODEC_FINE)...
SPLIT_ABOVE = 4096
#: ... with a high part of at most this many table entries.
HIGH_ALPHABET = 1024
#: The most levels a quantized tensor may have (a step finer than span / MAX_LEVELS is never used).
MAX_LEVELS = 1 << 24


@dataclass(frozen=True)
class WeightCodecConfig:
    """What gets quantized and how."""

    min_size: int = 1024  # tensors with fewer values are stored exactly
    deadzone: float = 0.2  # values within (0.5 + deadzone) steps of 0 become 0
    target_bits_per_weight: float | None = 3.0  # over the quantized tensors (None: use target_bytes)
    target_bytes: int | None = None  # the whole file
    #: Float tensors that are not quantized (biases, norms): "exact", or "float16" (IEEE half,
    #: 2^-11 relative error; a tensor outside half's range stays exact).
    small_floats: str = "exact"
    #: The largest alphabet coded with column contexts (None: any). A context-coded row whose
    #: contexts change often is decoded with a model built per symbol, work that grows with the
    #: alphabet: graphs that must load fast (shaec's own, imgcodec.train.export) cap it.
    context_alphabet: int | None = None
    #: Nothing changes: 16-bit float values (float16 and bf16 tensors, float32 ones that hold only
    #: bf16 values) are entropy-coded exactly (CODEC_EXACT16), other float32 ones too
    #: (CODEC_EXACT32), the rest stored as they are. The targets are ignored.
    lossless: bool = False

    def __post_init__(self) -> None:
        if self.small_floats not in SMALL_FLOATS:
            raise ValueError(f"small_floats must be one of {', '.join(SMALL_FLOATS)}, not {self.small_floats!r}")
        if self.lossless and self.small_floats != "exact":
            raise ValueError("a lossless file keeps small floats exact")


def quantizable(array: np.ndarray, dtype: str, config: WeightCodecConfig) -> bool:
    return dtype in FLOAT_DTYPES and array.ndim >= 2 and array.size >= config.min_size and bool(np.all(np.isfinite(array)))


def _rms(array: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(array, dtype=np.float64))))
    return rms if rms > 0 else 1.0


def _symbols(array: np.ndarray, step: float, deadzone: float) -> np.ndarray:
    """Quantized integers: round to nearest, with magnitudes below 0.5 + deadzone going to 0."""
    scaled = np.abs(array.astype(np.float64)) / step
    magnitude = np.floor(scaled + 0.5 - deadzone).clip(min=0)
    return (np.sign(array) * magnitude).astype(np.int64)


def _entropy_bits_of_counts(counts: np.ndarray) -> float:
    """Bits of coding the counted values i.i.d. at their empirical frequencies."""
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def step_of(array: np.ndarray, unit: float, scale: float) -> float:
    """scale * unit, but never finer than MAX_LEVELS levels over the tensor's span (float32
    weights hold about that much precision)."""
    return _step(float(np.max(array)) - float(np.min(array)), unit, scale)


def _step(span: float, unit: float, scale: float) -> float:
    """step_of for a tensor whose values span `span`."""
    return max(scale * unit, span / (MAX_LEVELS - 4))


def low_bits_for(levels: int) -> int:
    """Raw low bits per symbol for an alphabet of `levels` (0: one table holds it)."""
    if levels <= SPLIT_ABOVE:
        return 0
    return int(np.ceil(np.log2(levels / HIGH_ALPHABET)))


class _SortedMagnitudes:
    """A tensor's magnitudes sorted, apart by sign, so that the histogram of its integers at a
    step (what _symbols would give) takes a binary search per level instead of a pass over every
    weight: choose_scale tries some 40 steps. The magnitude floor(x / step + 0.5 - deadzone),
    computed as _symbols computes it, never decreases with x, so each level's first index in
    the sorted values is found by evaluating it there: the counts are _symbols' exactly."""

    def __init__(self, array: np.ndarray) -> None:
        values = array.ravel()  # kept in its own dtype (negation and sorting are exact), read as float64
        self.positive = np.sort(values[values > 0])
        self.negative = np.sort(-values[values < 0])
        self.zeros = values.size - self.positive.size - self.negative.size
        self.span = float(np.max(array)) - float(np.min(array))  # as step_of reads it

    def step(self, unit: float, scale: float) -> float:
        """step_of for this tensor."""
        return _step(self.span, unit, scale)

    @staticmethod
    def _level_counts(magnitudes: np.ndarray, step: float, deadzone: float) -> np.ndarray:
        """counts[k]: how many sorted magnitudes quantize to k, for k = 0 .. the largest."""
        if magnitudes.size == 0:
            return np.zeros(1, dtype=np.int64)

        def level(x: np.ndarray) -> np.ndarray:
            return np.floor(x.astype(np.float64) / step + 0.5 - deadzone).clip(min=0)

        top = int(level(magnitudes[-1:])[0])
        if top * max(1, magnitudes.size.bit_length()) >= magnitudes.size:  # many levels: one pass
            return np.bincount(level(magnitudes).astype(np.int64), minlength=top + 1)
        wanted = np.arange(1, top + 1, dtype=np.float64)
        low = np.zeros(top, dtype=np.int64)  # the first index whose level is >= k lies in [low, high]
        high = np.full(top, magnitudes.size, dtype=np.int64)
        while np.any(low < high):
            middle = np.minimum((low + high) // 2, magnitudes.size - 1)
            reached = level(magnitudes[middle]) >= wanted
            open_ = low < high
            high = np.where(open_ & reached, middle, high)
            low = np.where(open_ & ~reached, middle + 1, low)
        return np.diff(np.concatenate([[0], low, [magnitudes.size]]))

    def histogram(self, step: float, deadzone: float) -> tuple[np.ndarray, int]:
        """The counts of the tensor's integers q at this step from q.min() to q.max(), as
        np.bincount(q - q.min()) gives them, and q.min()."""
        negative = self._level_counts(self.negative, step, deadzone)
        positive = self._level_counts(self.positive, step, deadzone)
        counts = np.concatenate([negative[:0:-1], [negative[0] + positive[0] + self.zeros], positive[1:]])
        values = np.arange(-(negative.size - 1), positive.size)
        present = np.flatnonzero(counts)
        return counts[present[0]:present[-1] + 1], int(values[present[0]])


def _estimate_bytes(tensors: list[tuple[np.ndarray | _SortedMagnitudes, float]], scale: float,
                    deadzone: float) -> tuple[float, float]:
    """(payload bytes, table bytes) of the quantized tensors (array or its _SortedMagnitudes,
    unit step) at step scale * unit."""
    payload = table = 0.0
    for tensor, unit in tensors:
        sorted_ = tensor if isinstance(tensor, _SortedMagnitudes) else _SortedMagnitudes(tensor)
        counts, _ = sorted_.histogram(sorted_.step(unit, scale), deadzone)
        payload += _entropy_bits_of_counts(counts) / 8
        levels = counts.size + 1  # q.max() - q.min() + 2
        table += 2 * ((levels >> low_bits_for(levels)) + 2)
    return payload, table


def choose_scale(tensors: list[tuple[np.ndarray, float]], config: WeightCodecConfig, fixed_bytes: int,
                 gain: float = 1.0) -> float:
    """The step scale s (step = s * each tensor's unit step) that meets the target, by bisection on
    log s. More bits are always the smaller s, so the search is monotone. `gain`: coded payload
    bytes per byte of the i.i.d. entropy estimate (below 1 where context coding pays)."""
    count = sum(a.size for a, _ in tensors)
    prepared = [(_SortedMagnitudes(array), unit) for array, unit in tensors]

    def cost(scale: float) -> float:
        payload, table = _estimate_bytes(prepared, scale, config.deadzone)
        payload *= gain
        if config.target_bytes is not None:
            return payload + table + fixed_bytes - config.target_bytes
        return 8 * payload / count - float(config.target_bits_per_weight)

    low, high = np.log(1e-4), np.log(8.0)  # cost(low) > 0 (fine), cost(high) < 0 (coarse) normally
    if cost(np.exp(high)) > 0:
        raise ValueError("the target is below what the coarsest quantization reaches")
    for _ in range(40):
        mid = (low + high) / 2
        if cost(np.exp(mid)) > 0:
            low = mid
        else:
            high = mid
    return float(np.exp(high))


def unit_steps(chosen: dict[str, np.ndarray], sensitivity: Mapping[str, float] | None) -> dict[str, float]:
    """Each quantized tensor's step at scale 1: its RMS, or, given sensitivities, sqrt(n / g)
    rescaled so that the steps' geometric mean over the weights stays that of the RMS (the
    search range of choose_scale holds either way)."""
    rms = {n: _rms(a) for n, a in chosen.items()}
    if sensitivity is None:
        return rms
    missing = sorted(set(chosen) - set(sensitivity))
    if missing:
        raise ValueError(f"no sensitivity for {', '.join(missing)}")
    bad = [n for n in chosen if not (np.isfinite(sensitivity[n]) and sensitivity[n] > 0)]
    if bad:
        raise ValueError(f"sensitivities must be finite and positive: {', '.join(bad)}")
    raw = {n: float(np.sqrt(a.size / sensitivity[n])) for n, a in chosen.items()}
    weights = np.array([a.size for a in chosen.values()], dtype=np.float64)
    log_ratio = np.array([np.log(raw[n] / rms[n]) for n in chosen])
    shift = float(np.exp(np.sum(weights * log_ratio) / weights.sum()))
    return {n: raw[n] / shift for n in chosen}


def compress_tensors(tensors: dict[str, tuple[np.ndarray, str]], config: WeightCodecConfig,
                     sensitivity: Mapping[str, float] | None = None) -> list[Record]:
    """name -> (values, dtype name) to records. Quantized tensors meet the bits-per-weight target
    on average; a size target is met by the whole file (never exceeded). `sensitivity` (name ->
    output error per unit of noise variance per weight, for every tensor that gets quantized)
    spends the bits where the output needs them (see the module docstring)."""
    if config.lossless:
        return [lossless_record(name, array, dtype, config) for name, (array, dtype) in tensors.items()]
    chosen = {n: a for n, (a, d) in tensors.items() if quantizable(a, d, config)}
    raw_bytes = sum(len(tensor_record(n, a, d, None, config).payload) for n, (a, d) in tensors.items() if n not in chosen)
    # Container bytes besides payloads and tables: record headers, quantizer fields, and up to
    # two 32-bit words the range coder may add per tensor.
    fixed = 10 + raw_bytes + sum(13 + len(n.encode()) + 8 * a.ndim for n, (a, _) in tensors.items()) \
        + 24 * len(chosen)
    if not chosen:
        return [tensor_record(name, array, dtype, None, config) for name, (array, dtype) in tensors.items()]
    units = unit_steps(chosen, sensitivity)
    arrays = [(a, units[n]) for n, a in chosen.items()]

    def records_at(scale: float) -> list[Record]:
        return [tensor_record(name, array, dtype, step_of(array, units[name], scale) if name in chosen else None, config)
                for name, (array, dtype) in tensors.items()]

    # The search estimates i.i.d. coding; the coded payload is smaller where contexts pay, so the
    # estimate is corrected by the ratio actually reached until that ratio settles. Of the
    # scales tried, the one whose coded file comes nearest the target is kept (where the ratio
    # swings with the scale it need not settle).
    count = sum(a.size for a in chosen.values())
    gain, tried = 1.0, []
    for _ in range(4):
        scale = choose_scale(arrays, config, fixed, gain)
        records = records_at(scale)
        coded = sum(len(r.payload) + len(r.low) for r in records if r.name in chosen)
        miss = (len(pack(records)) - config.target_bytes if config.target_bytes is not None
                else 8 * coded / count - float(config.target_bits_per_weight))
        tried.append((abs(miss), scale, records))
        measured = coded / max(1.0, _estimate_bytes(arrays, scale, config.deadzone)[0])
        if abs(measured - gain) <= 0.01 * gain:
            break
        gain = measured
    _, scale, records = min(tried, key=lambda t: t[0])
    for _ in range(20):
        if config.target_bytes is None or len(pack(records)) <= config.target_bytes:
            return records
        scale *= 1.02  # the entropy estimate was a little optimistic: coarser until it fits
        records = records_at(scale)
    raise ValueError("could not meet the target size")


def tensor_record(name: str, array: np.ndarray, dtype: str, step: float | None, config: WeightCodecConfig) -> Record:
    """One tensor's record: not quantized (step None: exact, or float16 if the config says so and
    the values fit) or quantized with this step."""
    if step is None and config.small_floats == "float16" and dtype in ("<f4", "<f8", "bfloat16") \
            and bool(np.all(np.abs(array) <= HALF_MAX)):
        half = np.ascontiguousarray(array, dtype="<f2")
        return Record(name, dtype, tuple(array.shape), CODEC_FLOAT16, payload=half.tobytes())
    if step is None:
        stored = np.ascontiguousarray(array, dtype="<f4" if dtype == "bfloat16" else dtype)
        return Record(name, dtype, tuple(array.shape), CODEC_RAW, payload=stored.tobytes())
    step = float(np.float32(step))
    q = _symbols(array, step, config.deadzone)
    offset = int(q.min())
    symbols = q - offset
    try:
        fields = split_fields(symbols, -offset, config)
    except ValueError:
        raise ValueError(f"tensor {name!r} needs {int(symbols.max()) + 2} levels at this target; "
                         "ask for fewer bits") from None
    return Record(name, dtype, tuple(array.shape), CODEC_FINE if fields["low_bits"] else CODEC_UNIFORM, step, offset,
                  **fields)


def pack_low_bits(symbols: np.ndarray, low_bits: int) -> bytes:
    """The low `low_bits` bits of each (non-negative) symbol, little-endian, packed (one byte per
    bit while packing, not eight: a large tensor's bits stay small in memory)."""
    bits = np.empty((symbols.size, low_bits), dtype=np.uint8)  # values, bits
    for bit in range(low_bits):
        bits[:, bit] = (symbols >> bit) & 1
    return np.packbits(bits.ravel(), bitorder="little").tobytes()


def unpack_low_bits(low: bytes, count: int, low_bits: int) -> np.ndarray:
    """pack_low_bits' inverse: `count` int64 values."""
    bits = np.unpackbits(np.frombuffer(low, dtype=np.uint8), count=count * low_bits, bitorder="little")
    bits = bits.reshape(count, low_bits)
    values = np.zeros(count, dtype=np.int64)
    for bit in range(low_bits):
        values |= bits[:, bit].astype(np.int64) << bit
    return values


def split_fields(symbols: np.ndarray, zero: int, config: WeightCodecConfig) -> dict[str, object]:
    """A split record's fields for non-negative symbols, `zero` the symbol of the value 0: the
    high parts' coding (zeros: a high symbol of their own), the raw low bits of the others."""
    size = int(symbols.max()) + 2  # one spare symbol: a table always has two entries
    low_bits = low_bits_for(size)
    if low_bits > MAX_LOW_BITS:
        raise ValueError(f"{size} levels are more than a .shaw record holds")
    if not low_bits:
        coding = encode_symbols(symbols, size, contexts=config.context_alphabet is None or size <= config.context_alphabet)
        return {**symbol_fields(coding), "low_bits": 0, "low": b""}
    flat = symbols.ravel()
    is_zero = flat == zero
    high = flat >> low_bits
    escape = int(high.max()) + 1  # the zeros' high symbol
    high[is_zero] = escape
    high_size = escape + 2
    coding = encode_symbols(high.reshape(symbols.shape), high_size, contexts=config.context_alphabet is None
                            or high_size <= config.context_alphabet)
    return {**symbol_fields(coding), "low_bits": low_bits, "low": pack_low_bits(flat[~is_zero], low_bits)}


def join_split(high: np.ndarray, record: Record) -> np.ndarray:
    """split_fields' inverse: the flat symbols of a split record from its decoded high symbols."""
    flat = high.astype(np.int64).ravel()
    if not record.low_bits:
        return flat
    escape = np.atleast_2d(record.counts).shape[1] - 2
    kept = flat != escape
    count = int(np.count_nonzero(kept))
    if len(record.low) != low_length(count, record.low_bits):
        raise FormatError(f"tensor {record.name!r} holds {len(record.low)} bytes of low bits, expected "
                          f"{low_length(count, record.low_bits)}")
    symbols = np.full(flat.shape, -record.offset, dtype=np.int64)
    symbols[kept] = (flat[kept] << record.low_bits) | unpack_low_bits(record.low, count, record.low_bits)
    return symbols


def sixteen_bit_codes(array: np.ndarray, dtype: str) -> np.ndarray | None:
    """The sign-magnitude integers of the 16-bit patterns of a tensor's values (-0.0 apart from
    +0.0: -1): IEEE half patterns for a float16 tensor, bfloat16 ones for a bfloat16 or float32
    one; None where a float32 value is not a bfloat16."""
    if dtype == "<f2":
        pattern = np.ascontiguousarray(array, dtype="<f2").view("<u2").astype(np.int64)
    else:
        bits = np.ascontiguousarray(array, dtype="<f4").view("<u4")
        if np.any(bits & 0xFFFF):
            return None
        pattern = (bits >> 16).astype(np.int64)
    magnitude = pattern & 0x7FFF
    return np.where(pattern & 0x8000, -magnitude - 1, magnitude)


def sixteen_bit_values(codes: np.ndarray, dtype: str) -> np.ndarray:
    """sixteen_bit_codes' inverse: float16 values for a float16 tensor, else float32 ones."""
    pattern = np.where(codes < 0, 0x8000 | (-codes - 1), codes)
    if dtype == "<f2":
        return pattern.astype("<u2").view("<f2")
    return (pattern.astype("<u4") << 16).view("<f4")


def thirty_two_bit_codes(array: np.ndarray) -> np.ndarray:
    """The sign-magnitude integers of a float32 tensor's 32-bit patterns (-0.0 apart from +0.0: -1)."""
    pattern = np.ascontiguousarray(array, dtype="<f4").view("<u4").astype(np.int64)
    magnitude = pattern & 0x7FFFFFFF
    return np.where(pattern & 0x80000000, -magnitude - 1, magnitude)


def thirty_two_bit_values(codes: np.ndarray) -> np.ndarray:
    """thirty_two_bit_codes' inverse: float32 values."""
    pattern = np.where(codes < 0, 0x80000000 | (-codes - 1), codes)
    return pattern.astype("<u4").view("<f4")


def lossless_record(name: str, array: np.ndarray, dtype: str, config: WeightCodecConfig) -> Record:
    """A tensor stored without loss: where it is quantizable (large, finite floats), its values'
    bit patterns entropy-coded, 16-bit ones (float16, bfloat16, float32 holding only bfloat16
    values: CODEC_EXACT16) or float32 ones (CODEC_EXACT32, where that is smaller than the raw
    values: the sign and exponent of trained weights take few values, the low mantissa bits are
    near uniform); else as it is."""
    raw = tensor_record(name, array, dtype, None, config)
    if not quantizable(array, dtype, config) or dtype not in ("<f2", "<f4", "bfloat16"):
        return raw
    codes, codec = sixteen_bit_codes(array, dtype), CODEC_EXACT16
    if codes is None:
        codes, codec = thirty_two_bit_codes(array), CODEC_EXACT32
    offset = int(codes.min())
    record = Record(name, dtype, tuple(array.shape), codec, 0.0, offset, **split_fields(codes - offset, -offset, config))
    if codec == CODEC_EXACT32 and len(record.payload) + len(record.low) + 2 * record.counts.size >= len(raw.payload):
        return raw
    return record


def symbol_fields(coding: SymbolCoding) -> dict[str, object]:
    """A Record's fields that hold a coded symbol stream."""
    return {"counts": coding.tables, "payload": coding.payload, "transposed": coding.transposed,
            "background": coding.background, "previous": coding.previous}


def decompress_record(record: Record) -> np.ndarray:
    """A record's values (float32 for bfloat16 tensors; the caller restores the dtype); a graph
    record's bytes as uint8."""
    if record.codec == CODEC_FLOAT16:
        if len(record.payload) != 2 * record.size:
            raise FormatError(f"tensor {record.name!r} holds {len(record.payload)} bytes, expected {2 * record.size}")
        dtype = "<f4" if record.dtype == "bfloat16" else record.dtype
        return np.frombuffer(record.payload, dtype="<f2").astype(dtype).reshape(record.shape)
    if record.codec in (CODEC_RAW, CODEC_GRAPH):
        dtype = "<f4" if record.dtype == "bfloat16" else record.dtype
        expected = record.size * np.dtype(dtype).itemsize
        if len(record.payload) != expected:
            raise FormatError(f"tensor {record.name!r} holds {len(record.payload)} bytes, expected {expected}")
        return np.frombuffer(record.payload, dtype=dtype).reshape(record.shape).copy()
    coding = SymbolCoding(np.atleast_2d(record.counts), record.payload, record.transposed, record.background,
                          record.previous)
    symbols = decode_symbols(coding, record.shape)
    if record.codec in SPLIT_CODECS:
        symbols = join_split(symbols, record)
    if record.codec == CODEC_EXACT32:
        codes = symbols.astype(np.int64).ravel() + record.offset
        if codes.size and (codes.min() < -(1 << 31) or codes.max() > (1 << 31) - 1):
            raise FormatError(f"tensor {record.name!r} holds values beyond 32 bits")
        return thirty_two_bit_values(codes).reshape(record.shape)
    if record.codec == CODEC_EXACT16:
        codes = symbols.astype(np.int64).ravel() + record.offset
        if codes.size and (codes.min() < -0x8000 or codes.max() > 0x7FFF):
            raise FormatError(f"tensor {record.name!r} holds values beyond 16 bits")
        return sixteen_bit_values(codes, record.dtype).reshape(record.shape)
    if record.codec == CODEC_CODEBOOK:
        return record.centers[symbols].astype("<f4" if record.dtype == "bfloat16" else record.dtype).reshape(record.shape)
    values = (symbols.astype(np.int64) + record.offset).astype(np.float32) * np.float32(record.step)
    dtype = "<f4" if record.dtype == "bfloat16" else record.dtype
    return values.astype(dtype).reshape(record.shape)


def describe(record: Record) -> dict[str, object]:
    """A row of `shaec weights info` (decodes the tensor to count what stays non-zero)."""
    row: dict[str, object] = {"name": record.name, "shape": "x".join(map(str, record.shape)) or "scalar",
                              "dtype": record.dtype, "bytes": len(record.payload) + len(record.low),
                              "bits_per_weight": 8 * (len(record.payload) + len(record.low)) / max(1, record.size)}
    if record.codec in (CODEC_RAW, CODEC_FLOAT16, CODEC_GRAPH):
        codec = {CODEC_RAW: "exact", CODEC_FLOAT16: "float16", CODEC_GRAPH: "graph"}[record.codec]
        return row | {"codec": codec, "centers": "-", "step": "-", "kept": 1.0, "contexts": "-"}
    kept = float(np.count_nonzero(decompress_record(record))) / max(1, record.size)
    tables = np.atleast_2d(record.counts)
    # Buckets (x2: split by the symbol above), counted per input (a column of the tensor's
    # matrix) or per output (a row, when transposed).
    buckets = tables.shape[0] // 2 if record.previous else tables.shape[0]
    contexts = "-" if tables.shape[0] == 1 else \
        f"{buckets}{'x2' if record.previous else ''} per {'output' if record.transposed else 'input'}"
    if record.codec == CODEC_CODEBOOK:
        return row | {"codec": "learned", "centers": len(record.centers), "step": "-", "kept": kept,
                      "contexts": contexts}
    if record.codec in (CODEC_EXACT16, CODEC_EXACT32):
        width = 16 if record.codec == CODEC_EXACT16 else 32
        return row | {"codec": f"{width}-bit exact", "centers": "-", "step": "-", "kept": kept, "contexts": contexts}
    fine = record.codec == CODEC_FINE
    return row | {"codec": f"uniform+{record.low_bits} raw bits" if fine else "uniform",
                  "centers": (tables.shape[1] - 2) << record.low_bits if fine else tables.shape[1] - 1,
                  "step": record.step, "kept": kept,
                  "contexts": contexts}
