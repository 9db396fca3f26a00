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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import FormatError
from .container import CODEC_CODEBOOK, CODEC_FLOAT16, CODEC_GRAPH, CODEC_RAW, CODEC_UNIFORM, MAX_TABLE, Record, pack
from .symbols import SymbolCoding, decode_symbols, encode_symbols

FLOAT_DTYPES = ("<f4", "<f2", "<f8", "bfloat16")
SMALL_FLOATS = ("exact", "float16")
HALF_MAX = 65504.0


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

    def __post_init__(self) -> None:
        if self.small_floats not in SMALL_FLOATS:
            raise ValueError(f"small_floats must be one of {', '.join(SMALL_FLOATS)}, not {self.small_floats!r}")


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


def _entropy_bits(q: np.ndarray) -> float:
    counts = np.bincount((q - q.min()).ravel())
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def step_of(array: np.ndarray, unit: float, scale: float) -> float:
    """scale * unit, but never so fine that the tensor's symbols outgrow a table (MAX_TABLE):
    a sensitive tensor asked for more precision than 16-bit symbols hold gets all they hold."""
    span = float(np.max(array)) - float(np.min(array))
    return max(scale * unit, span / (MAX_TABLE - 4))


def _estimate_bytes(tensors: list[tuple[np.ndarray, float]], scale: float, deadzone: float) -> tuple[float, float]:
    """(payload bytes, table bytes) of the quantized tensors (array, unit step) at step scale * unit."""
    payload = table = 0.0
    for array, unit in tensors:
        q = _symbols(array, step_of(array, unit, scale), deadzone)
        payload += _entropy_bits(q) / 8
        table += 2 * (int(q.max() - q.min()) + 2)
    return payload, table


def choose_scale(tensors: list[tuple[np.ndarray, float]], config: WeightCodecConfig, fixed_bytes: int,
                 gain: float = 1.0) -> float:
    """The step scale s (step = s * each tensor's unit step) that meets the target, by bisection on
    log s. More bits are always the smaller s, so the search is monotone. `gain`: coded payload
    bytes per byte of the i.i.d. entropy estimate (below 1 where context coding pays)."""
    count = sum(a.size for a, _ in tensors)

    def cost(scale: float) -> float:
        payload, table = _estimate_bytes(tensors, scale, config.deadzone)
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
    # estimate is corrected by the ratio actually reached until that ratio settles.
    gain = 1.0
    for _ in range(4):
        scale = choose_scale(arrays, config, fixed, gain)
        records = records_at(scale)
        coded = sum(len(r.payload) for r in records if r.name in chosen)
        measured = coded / max(1.0, _estimate_bytes(arrays, scale, config.deadzone)[0])
        if abs(measured - gain) <= 0.01 * gain:
            break
        gain = measured
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
    size = int(symbols.max()) + 2  # one spare symbol: a table always has two entries
    if size > MAX_TABLE:
        raise ValueError(f"tensor {name!r} needs {size} levels at this target; ask for fewer bits")
    return Record(name, dtype, tuple(array.shape), CODEC_UNIFORM, step, offset,
                  **symbol_fields(encode_symbols(symbols, size, contexts=config.context_alphabet is None
                                                 or size <= config.context_alphabet)))


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
    if record.codec == CODEC_CODEBOOK:
        return record.centers[symbols].astype("<f4" if record.dtype == "bfloat16" else record.dtype).reshape(record.shape)
    values = (symbols.astype(np.int64) + record.offset).astype(np.float32) * np.float32(record.step)
    dtype = "<f4" if record.dtype == "bfloat16" else record.dtype
    return values.astype(dtype).reshape(record.shape)


def describe(record: Record) -> dict[str, object]:
    """A row of `shaec weights info` (decodes the tensor to count what stays non-zero)."""
    row: dict[str, object] = {"name": record.name, "shape": "x".join(map(str, record.shape)) or "scalar",
                              "dtype": record.dtype, "bytes": len(record.payload),
                              "bits_per_weight": 8 * len(record.payload) / max(1, record.size)}
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
    return row | {"codec": "uniform", "centers": tables.shape[1] - 1, "step": record.step, "kept": kept,
                  "contexts": contexts}
