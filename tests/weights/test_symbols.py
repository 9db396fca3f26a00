"""Symbol coding of quantized tensors: i.i.d. or column-adaptive contexts (imgcodec.weights.symbols)."""
from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest

from imgcodec.errors import FormatError
from imgcodec.weights.codec import decompress_record
from imgcodec.weights.container import CODEC_CODEBOOK, Record, pack, unpack
from imgcodec.weights.symbols import (SymbolCoding, decode_symbols, encode_symbols, matrix_shape,
                                      row_buckets)


def _first_layer(rows: int = 60, cols: int = 200, seed: int = 0) -> np.ndarray:
    """Symbols of a first layer: a third of its inputs are dead (background 2 in every row),
    the others use 0..4 with the background most often."""
    rng = np.random.default_rng(seed)
    live = rng.random(cols) < 2 / 3
    symbols = np.where(rng.random((rows, cols)) < 0.6, 2, rng.integers(0, 5, (rows, cols)))
    return np.where(live[None, :], symbols, 2)


def test_buckets_are_the_integer_formula() -> None:
    seen = np.arange(0, 200)
    for row in (199, 250, 1000):
        for buckets in (2, 8, 16):
            expected = [min(buckets - 1, math.isqrt(buckets * buckets * (2 * k + 1) // (2 * row + 2)))
                        for k in seen]
            assert row_buckets(seen, row, buckets).tolist() == expected


def test_dead_columns_pick_contexts_and_round_trip() -> None:
    symbols = _first_layer()
    coding = encode_symbols(symbols, 5)
    assert coding.contexts > 1 and not coding.transposed and coding.background == 2
    iid = encode_symbols(symbols.reshape(-1), 5)  # 1-D: no matrix, one table
    assert iid.contexts == 1
    assert len(coding.payload) + coding.tables.size * 2 < 0.9 * (len(iid.payload) + iid.tables.size * 2)
    assert np.array_equal(decode_symbols(coding, symbols.shape), symbols.ravel())


def test_dead_rows_pick_the_transposed_matrix() -> None:
    """A convolution whose dead filters are rows of its matrix: contexts run along the transpose."""
    symbols = np.ascontiguousarray(_first_layer(rows=200, cols=60, seed=1).T).reshape(60, 20, 10)
    coding = encode_symbols(symbols, 5)
    assert coding.transposed and matrix_shape(symbols.shape, True) == (200, 60)
    assert np.array_equal(decode_symbols(coding, symbols.shape), symbols.ravel())


def test_runs_down_the_columns_use_the_previous_row() -> None:
    """Neighbouring rows alike (neighbouring pixels of a first layer, transposed): the contexts
    split on the symbol above."""
    rng = np.random.default_rng(4)
    active = np.zeros((300, 80), dtype=bool)
    for row in range(1, 300):
        active[row] = np.where(rng.random(80) < 0.9, active[row - 1], rng.random(80) < 0.3)
    symbols = np.where(active, rng.integers(1, 4, active.shape), 0)
    coding = encode_symbols(symbols, 4)
    assert coding.previous and coding.contexts == 2 * coding.buckets
    assert np.array_equal(decode_symbols(coding, symbols.shape), symbols.ravel())


def test_a_large_alphabet_with_contexts_decodes_in_bounded_time() -> None:
    """Context rows with thousands of centers (a finely quantized layer of shae-v9's synthesis)
    decode run by run with ready models: a model built per symbol took 7 s for these 884,736
    symbols of 4,000 centers; the runs take a fraction of a second."""
    import time

    rng = np.random.default_rng(6)
    shape = (512, 1728)
    values = rng.laplace(size=shape) * 300
    values[rng.random(shape) < 0.3] = 0
    values[:, rng.random(shape[1]) < 0.3] = 0  # dead inputs: the contexts pay
    symbols = (np.clip(np.round(values), -1999, 1999) + 2000).astype(np.int64)
    coding = encode_symbols(symbols, 4000)
    assert coding.contexts > 1
    start = time.perf_counter()
    decoded = decode_symbols(coding, shape)
    assert time.perf_counter() - start < 3.0
    assert np.array_equal(decoded, symbols.ravel())


def test_uniform_symbols_stay_iid() -> None:
    symbols = np.random.default_rng(3).integers(0, 7, (40, 50))
    coding = encode_symbols(symbols, 7)
    assert coding.contexts == 1
    assert np.array_equal(decode_symbols(coding, symbols.shape), symbols.ravel())


def test_damaged_payloads_are_format_errors() -> None:
    symbols = _first_layer()
    coding = encode_symbols(symbols, 5)
    for payload in (coding.payload[:-4], coding.payload + b"\1\2\3\4" * 2, coding.payload[:8]):
        with pytest.raises(FormatError):
            decode_symbols(SymbolCoding(coding.tables, payload, coding.transposed, coding.background), symbols.shape)
    with pytest.raises(FormatError, match="too short"):  # a huge claim is refused before any decoding
        decode_symbols(coding, (1 << 20, 1 << 10))
    with pytest.raises(FormatError, match="rows"):  # one range-coder call per row: bounded
        decode_symbols(coding, (1 << 17, 1))


def test_version_1_files_still_read() -> None:
    """A version-1 codebook record (one table, no symbol model) decodes as it always did."""
    centers = np.array([0.0, 0.5, -0.5], np.float32)
    symbols = _first_layer(rows=8, cols=40) % 3
    coding = encode_symbols(symbols.reshape(-1), 3)
    name = b"fc.weight"
    body = struct.pack("<4sBBI", b"SHAW", 1, 0, 1) + struct.pack("<H", len(name)) + name
    body += struct.pack("<BBB", 0, 2, CODEC_CODEBOOK) + struct.pack("<2Q", 8, 40)
    body += struct.pack("<I", 3) + coding.tables[0].astype("<u2").tobytes() + centers.tobytes()
    body += struct.pack("<Q", len(coding.payload)) + coding.payload
    (record,) = unpack(body + struct.pack("<I", zlib.crc32(body)))
    assert np.array_equal(decompress_record(record), centers[symbols])
    again = unpack(pack([record]))[0]  # written back as version 2
    assert np.array_equal(decompress_record(again), centers[symbols])


def test_symbol_model_fields_are_checked() -> None:
    symbols = _first_layer()
    coding = encode_symbols(symbols, 5)
    record = Record("w", "<f4", symbols.shape, CODEC_CODEBOOK, counts=coding.tables, payload=coding.payload,
                    centers=np.arange(5, dtype=np.float32), transposed=coding.transposed,
                    background=coding.background)
    data = bytearray(pack([record]))
    at = data.index(b"w") + 1 + 3 + 16 + 4  # name, dtype/rank/codec, shape, R: then B, flags, background
    odd = bytearray(data)
    odd[at], odd[at + 1] = 3, 2  # split by the symbol above needs an even number of tables
    for offset, value in ((0, 0), (0, 200), (1, 7), (2, 9)):
        bad = bytearray(data)
        bad[at + offset] = value
        bad[-4:] = struct.pack("<I", zlib.crc32(bytes(bad[:-4])))
        with pytest.raises(FormatError, match="symbol model"):
            unpack(bytes(bad))
    odd[-4:] = struct.pack("<I", zlib.crc32(bytes(odd[:-4])))
    with pytest.raises(FormatError, match="symbol model"):
        unpack(bytes(odd))
