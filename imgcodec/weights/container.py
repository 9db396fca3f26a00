"""The .shaw container: magic, version, per-tensor records, CRC32 (docs/weights.md).

Every length is bounds-checked before it is used, so a damaged or hostile file fails with one
FormatError instead of an allocation the size of its claims.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError

MAGIC = b"SHAW"
#: Version 2 added each coded record's symbol model (contexts, orientation, background); version 1
#: files (one table per tensor) still read. Version 3 is version 2 with a graph record (codec 4);
#: files without one are still written as version 2. Version 4 adds split records (codecs 5
#: and 6); version 5 adds lossless float32 records (codec 7). A file is written with the lowest
#: version that holds its records.
FORMAT_VERSION = 2
GRAPH_VERSION = 3
FINE_VERSION = 4
EXACT32_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
#: Codecs each version may hold.
VERSION_CODECS = {1: 3, 2: 4, 3: 5, 4: 7, 5: 8}
MAX_RECORDS = 1 << 16
MAX_ELEMENTS = 1 << 31  # per tensor
MAX_TABLE = 1 << 16  # entries of a quantizer's symbol table
MAX_CONTEXTS = 64  # tables of one tensor (imgcodec.weights.symbols)

#: Codecs of a record: the raw little-endian bytes, or uniform quantization with an entropy-coded
#: symbol stream (imgcodec.weights.codec).
CODEC_RAW = 0
CODEC_UNIFORM = 1
#: Learned centers (training mode, imgcodec.weights.training): value = centers[symbol].
CODEC_CODEBOOK = 2
#: A small float tensor as IEEE half floats, restored to its own dtype (version 2).
CODEC_FLOAT16 = 3
#: Not a tensor: the model's graph (ONNX, its initializers marked external: the file's tensors),
#: uint8, shape (bytes,), at most one per file (version 3).
CODEC_GRAPH = 4
#: Uniform quantization too fine for one table (version 4): each symbol splits into its high
#: part, entropy-coded like CODEC_UNIFORM's, and `low_bits` raw low bits, packed little-endian in
#: `low`. Over a step much finer than the weights' spread the low bits are all but uniform, so
#: raw bits cost next to nothing, and the tables stay small (imgcodec.weights.codec). Zeros
#: have a high symbol of their own (the table's last but one) and no low bits.
CODEC_FINE = 5
#: Lossless (version 4): a float16 or bfloat16 tensor, or a float32 one whose every value is a
#: bfloat16 (trained in bf16), as the sign-magnitude integers of its 16-bit patterns (IEEE half
#: for float16), coded like CODEC_FINE's symbols (offset: the smallest integer; no step).
CODEC_EXACT16 = 6
#: Lossless (version 5): a float32 tensor as the sign-magnitude integers of its 32-bit patterns,
#: coded like CODEC_EXACT16's: the high parts (sign, exponent, the top mantissa bits) against a
#: table, the low mantissa bits raw.
CODEC_EXACT32 = 7
CODECS = (CODEC_RAW, CODEC_UNIFORM, CODEC_CODEBOOK, CODEC_FLOAT16, CODEC_GRAPH, CODEC_FINE, CODEC_EXACT16,
          CODEC_EXACT32)
SPLIT_CODECS = (CODEC_FINE, CODEC_EXACT16, CODEC_EXACT32)
MAX_LOW_BITS = 24

#: dtype code <-> numpy dtype; every tensor is stored with its own dtype restored on decode.
DTYPES: dict[int, str] = {0: "<f4", 1: "<f2", 2: "<f8", 3: "<i8", 4: "<i4", 5: "<i2", 6: "|i1", 7: "|u1",
                          8: "|b1", 9: "bfloat16"}
DTYPE_CODES = {name: code for code, name in DTYPES.items()}

_HEAD = struct.Struct("<4sBBI")  # magic, version, flags, record count
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class Record:
    """One tensor: its name, dtype and shape, how it is coded, and the coded bytes."""

    name: str
    dtype: str  # a DTYPES value
    shape: tuple[int, ...]
    codec: int
    step: float = 0.0  # CODEC_UNIFORM: value = (symbol + offset) * step, in float32
    offset: int = 0  # the smallest quantized integer
    #: CODEC_UNIFORM, CODEC_CODEBOOK: B,R uint16 tables (one per context, imgcodec.weights.symbols),
    #: each summing to 2^16
    counts: np.ndarray | None = None
    payload: bytes = b""
    centers: np.ndarray | None = None  # CODEC_CODEBOOK: float32, one per table entry
    transposed: bool = False  # symbol model: contexts run along the tensor's first dimension
    background: int = 0  # symbol model: the symbol the contexts count the absence of
    previous: bool = False  # symbol model: contexts split by the symbol above
    low_bits: int = 0  # CODEC_FINE, CODEC_EXACT16: raw low bits per symbol
    low: bytes = b""  # CODEC_FINE, CODEC_EXACT16: the low bits, low_bits per non-zero value, little-endian

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def low_length(size: int, low_bits: int) -> int:
    """Bytes that hold `size` values' low bits."""
    return (size * low_bits + 7) // 8


def _symbol_model(r: Record) -> bytes:
    """A coded record's tables and symbol model: R, B, flags, background, B x R counts."""
    tables = np.atleast_2d(np.asarray(r.counts, dtype="<u2"))
    flags = int(r.transposed) | 2 * int(r.previous)
    return struct.pack("<IBBH", tables.shape[1], tables.shape[0], flags, r.background) + tables.tobytes()


def graph_record(graph: bytes) -> Record:
    """The record that carries a model's graph (imgcodec.weights.onnx_weights.split)."""
    return Record("graph", "|u1", (len(graph),), CODEC_GRAPH, payload=graph)


def split_graph(records: list[Record]) -> tuple[bytes | None, list[Record]]:
    """(the graph record's bytes, or None; the tensor records) of a parsed file."""
    graph = next((r.payload for r in records if r.codec == CODEC_GRAPH), None)
    return graph, [r for r in records if r.codec != CODEC_GRAPH]


def pack(records: list[Record]) -> bytes:
    graphs = sum(r.codec == CODEC_GRAPH for r in records)
    if graphs > 1:
        raise ValueError("a .shaw file holds one graph at most")
    version = EXACT32_VERSION if any(r.codec == CODEC_EXACT32 for r in records) else (
        FINE_VERSION if any(r.codec in SPLIT_CODECS for r in records) else (GRAPH_VERSION if graphs else FORMAT_VERSION))
    parts = [_HEAD.pack(MAGIC, version, 0, len(records))]
    for r in records:
        name = r.name.encode("utf-8")
        parts.append(struct.pack("<H", len(name)) + name)
        parts.append(struct.pack("<BBB", DTYPE_CODES[r.dtype], len(r.shape), r.codec))
        parts.append(struct.pack(f"<{len(r.shape)}Q", *r.shape))
        if r.codec == CODEC_UNIFORM:
            parts.append(struct.pack("<fq", r.step, r.offset) + _symbol_model(r))
        elif r.codec in SPLIT_CODECS:
            if not 0 <= r.low_bits <= MAX_LOW_BITS or len(r.low) > low_length(r.size, r.low_bits):
                raise ValueError(f"tensor {r.name!r}: {len(r.low)} bytes of {r.low_bits} low bits per value")
            parts.append(struct.pack("<fqB", r.step, r.offset, r.low_bits) + _symbol_model(r)
                         + struct.pack("<Q", len(r.low)) + r.low)
        elif r.codec == CODEC_CODEBOOK:
            parts.append(_symbol_model(r) + np.asarray(r.centers, dtype="<f4").tobytes())
        parts.append(struct.pack("<Q", len(r.payload)) + r.payload)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError("file is truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def unpack(data: bytes) -> list[Record]:
    """Parse and validate a .shaw file; FormatError (one sentence) for anything else."""
    if len(data) < _HEAD.size + _CRC.size:
        raise FormatError("not a .shaw file (too short)" if not data.startswith(MAGIC) else "file is truncated")
    magic, version, _flags, count = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise FormatError("not a .shaw file")
    if version not in READABLE_VERSIONS:
        raise FormatError(f"unsupported .shaw format version {version} (this install reads versions "
                          f"{', '.join(map(str, READABLE_VERSIONS))})")
    (stored,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[:-_CRC.size]) != stored:
        raise FormatError("checksum mismatch: the file is corrupted or truncated")
    if count > MAX_RECORDS:
        raise FormatError(f"file claims {count} tensors, more than {MAX_RECORDS}")
    reader = _Reader(data[:-_CRC.size])
    reader.take(_HEAD.size)
    records = []
    for _ in range(count):
        (name_len,) = reader.unpack("<H")
        try:
            name = reader.take(name_len).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("a tensor name is not UTF-8") from None
        dtype_code, ndim, codec = reader.unpack("<BBB")
        if dtype_code not in DTYPES or codec not in CODECS[:VERSION_CODECS[version]] or ndim > 8:
            raise FormatError(f"tensor {name!r} has an unknown dtype, codec or rank")
        shape = reader.unpack(f"<{ndim}Q")
        if int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
            raise FormatError(f"tensor {name!r} claims {shape}, more than {MAX_ELEMENTS} values")
        if codec == CODEC_GRAPH and (DTYPES[dtype_code] != "|u1" or ndim != 1
                                     or any(r.codec == CODEC_GRAPH for r in records)):
            raise FormatError("the file has a damaged or second graph record")
        step, offset, counts, centers, transposed, background, previous = 0.0, 0, None, None, False, 0, False
        low_bits, low = 0, b""
        if codec in (CODEC_UNIFORM, CODEC_CODEBOOK) + SPLIT_CODECS:
            if codec == CODEC_UNIFORM:
                step, offset = reader.unpack("<fq")
            elif codec in SPLIT_CODECS:
                step, offset, low_bits = reader.unpack("<fqB")
                if low_bits > MAX_LOW_BITS or (codec == CODEC_FINE and low_bits == 0) \
                        or (codec == CODEC_EXACT16 and (step != 0 or DTYPES[dtype_code] not in ("<f2", "<f4", "bfloat16"))) \
                        or (codec == CODEC_EXACT32 and (step != 0 or DTYPES[dtype_code] != "<f4")):
                    raise FormatError(f"tensor {name!r} has a damaged quantizer")
            if version == 1:
                (table,), contexts, flags = reader.unpack("<I"), 1, 0
            else:
                table, contexts, flags, background = reader.unpack("<IBBH")
            if not 2 <= table <= MAX_TABLE or not np.isfinite(step) or (codec in (CODEC_UNIFORM, CODEC_FINE) and step <= 0):
                raise FormatError(f"tensor {name!r} has a damaged quantizer")
            if not 1 <= contexts <= MAX_CONTEXTS or flags > 3 or background >= table or (flags and ndim < 2) \
                    or (flags & 2 and contexts % 2):
                raise FormatError(f"tensor {name!r} has a damaged symbol model")
            counts = np.frombuffer(reader.take(2 * table * contexts), dtype="<u2").astype(np.int64)
            counts = counts.reshape(contexts, table)
            if np.any(counts.sum(axis=1) != 1 << 16) or counts.min() < 1:
                raise FormatError(f"tensor {name!r} has a damaged symbol table")
            transposed, previous = bool(flags & 1), bool(flags & 2)
            if codec == CODEC_CODEBOOK:
                centers = np.frombuffer(reader.take(4 * table), dtype="<f4").astype(np.float32)
                if not np.all(np.isfinite(centers)):
                    raise FormatError(f"tensor {name!r} has a damaged codebook")
            if codec in SPLIT_CODECS:
                (low_size,) = reader.unpack("<Q")
                if low_size > low_length(int(np.prod(shape, dtype=np.int64)), low_bits):
                    raise FormatError(f"tensor {name!r} claims more low bits than it has values")
                low = reader.take(low_size)
        (length,) = reader.unpack("<Q")
        records.append(Record(name, DTYPES[dtype_code], tuple(int(s) for s in shape), codec, float(step),
                              int(offset), counts, reader.take(length), centers, transposed, int(background),
                              previous, int(low_bits), low))
    if reader.pos != len(reader.data):
        raise FormatError("file has data after its last tensor")
    return records
