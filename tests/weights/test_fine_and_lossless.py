"""Fine quantization (high parts coded, low bits raw) and the lossless bfloat16 codec."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from imgcodec.cli import main
from imgcodec.errors import FormatError
from imgcodec.weights.codec import (SPLIT_ABOVE, WeightCodecConfig, compress_tensors, decompress_record,
                                    sixteen_bit_codes, sixteen_bit_values, thirty_two_bit_codes, thirty_two_bit_values)
from imgcodec.weights.container import (CODEC_EXACT16, CODEC_EXACT32, CODEC_FINE, CODEC_RAW, CODEC_UNIFORM, EXACT32_VERSION,
                                        FINE_VERSION, pack, unpack)


def _bf16_valued(shape: tuple[int, ...], seed: int = 0, zeros: float = 0.3) -> np.ndarray:
    """float32 values that are all bfloat16 (as weights trained in bf16), some exactly 0."""
    rng = np.random.default_rng(seed)
    values = torch.from_numpy(rng.normal(0, 0.05, shape).astype(np.float32)).bfloat16().float().numpy()
    values[rng.random(shape) < zeros] = 0.0
    return values


def _bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype="<f4").view("<u4")


def test_fine_steps_split_symbols_and_meet_a_high_bit_target() -> None:
    """Ten bits per weight need thousands of levels: the symbols split into a coded high part and
    raw low bits (CODEC_FINE), every value within half a step, and the file near the target."""
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 1, (256, 512)).astype(np.float32)
    weight[:, ::3] = 0.0  # structural zeros cost no low bits
    records = unpack(pack(compress_tensors({"w": (weight, "<f4")},
                                           WeightCodecConfig(target_bits_per_weight=10.0, deadzone=0.0))))
    (record,) = records
    assert record.codec == CODEC_FINE and record.low_bits > 0
    decoded = decompress_record(record)
    assert np.abs(decoded - weight).max() <= 0.5 * record.step + 2e-7 * np.abs(weight).max()  # + float32 rounding
    assert np.all(decoded[:, ::3] == 0)
    coded_bits = 8 * (len(record.payload) + len(record.low)) / weight.size
    assert abs(coded_bits - 10.0) < 0.3
    assert np.atleast_2d(record.counts).shape[1] <= 1024 + 2  # the tables stay small


def test_coarse_steps_keep_the_single_table_codec() -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 1, (64, 256)).astype(np.float32)
    (record,) = compress_tensors({"w": (weight, "<f4")}, WeightCodecConfig(target_bits_per_weight=4.0))
    assert record.codec == CODEC_UNIFORM and np.atleast_2d(record.counts).shape[1] <= SPLIT_ABOVE
    assert pack([record])[4] == 2  # and files without the new codecs keep version 2


def test_sixteen_bit_codes_round_trip_every_pattern_including_negative_zero() -> None:
    patterns = np.arange(1 << 16, dtype=np.uint32)
    bfloat = (patterns << 16).view(np.float32)
    half = patterns.astype(np.uint16).view(np.float16)
    for values, dtype in ((bfloat, "<f4"), (half, "<f2")):
        codes = sixteen_bit_codes(values, dtype)
        assert codes is not None and len(np.unique(codes)) == 1 << 16  # -0.0 apart from +0.0
        back = sixteen_bit_values(codes, dtype)
        assert back.dtype == values.dtype and np.array_equal(back.view(np.uint8), values.view(np.uint8)), dtype
    assert sixteen_bit_codes(np.array([1.0 + 2 ** -20], np.float32), "<f4") is None  # not a bfloat16


def test_lossless_keeps_every_bit_and_codes_bf16_values_smaller() -> None:
    weight = _bf16_valued((128, 64, 3, 3))
    weight[0, 0, 0, :2] = np.array([0x80000000, 0x80010000], np.uint32).view(np.float32)  # -0.0, a subnormal
    bias = np.random.default_rng(2).normal(0, 1, 64).astype(np.float32)  # too small to code: as it is
    tensors = {"conv.weight": (weight, "<f4"), "fc.bias": (bias, "<f4")}
    data = pack(compress_tensors(tensors, WeightCodecConfig(lossless=True)))
    assert data[4] == FINE_VERSION  # no float32 record: readers of version 4 read it
    records = {r.name: r for r in unpack(data)}
    assert records["conv.weight"].codec == CODEC_EXACT16 and records["fc.bias"].codec == CODEC_RAW
    for name, (array, _) in tensors.items():
        assert np.array_equal(_bits(decompress_record(records[name])), _bits(array)), name
    bf16_bytes = len(records["conv.weight"].payload) + len(records["conv.weight"].low)
    assert bf16_bytes < 0.5 * weight.nbytes  # under 16 bits per weight: the exponents are few


def test_lossless_codes_float32_patterns_smaller_and_exactly() -> None:
    rng = np.random.default_rng(1)
    other = rng.normal(0, 1, (64, 64)).astype(np.float32)  # full float32 mantissas
    other[0, :6] = np.array([0x80000000, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0],
                            np.uint32).view(np.float32)  # -0.0, subnormals, the extremes, +0.0
    sparse = np.where(rng.random((128, 96)) < 0.7, 0, rng.normal(0, 0.02, (128, 96))).astype(np.float32)
    noise = rng.integers(0, 2 ** 31, (64, 64), dtype=np.int64).astype(np.uint32).view(np.float32)
    noise = np.where(np.isfinite(noise), noise, 1.0).astype(np.float32)  # bit patterns with no structure
    tensors = {"fc.weight": (other, "<f4"), "sparse": (sparse, "<f4"), "noise": (noise, "<f4")}
    data = pack(compress_tensors(tensors, WeightCodecConfig(lossless=True)))
    assert data[4] == EXACT32_VERSION
    records = {r.name: r for r in unpack(data)}
    assert records["fc.weight"].codec == CODEC_EXACT32 and records["sparse"].codec == CODEC_EXACT32
    assert records["noise"].codec == CODEC_RAW  # coding would not make it smaller
    for name, (array, _) in tensors.items():
        assert np.array_equal(_bits(decompress_record(records[name])), _bits(array)), name
    size = {n: len(r.payload) + len(r.low) for n, r in records.items()}
    assert size["fc.weight"] < 0.9 * other.nbytes  # the sign and exponent cost a few bits, not nine
    assert size["sparse"] < 0.5 * sparse.nbytes  # zeros cost almost nothing
    codes = thirty_two_bit_codes(other)
    assert codes[0, 0] == -1 and codes[0, 5] == 0  # -0.0 apart from +0.0
    assert np.array_equal(_bits(thirty_two_bit_values(codes)), _bits(other))


def test_lossless_refuses_lossy_small_floats() -> None:
    with pytest.raises(ValueError, match="exact"):
        WeightCodecConfig(lossless=True, small_floats="float16")


def _fine_file() -> bytes:
    weight = _bf16_valued((64, 128), seed=3)
    return pack(compress_tensors({"w": (weight, "<f4")}, WeightCodecConfig(lossless=True)))


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_damaged_split_records_are_format_errors() -> None:
    data = _fine_file()
    (record,) = unpack(data)
    body = data[:-4]
    # Layout after the shape: step f32, offset i64, low_bits u8, then the symbol model.
    head = 10 + 2 + len(b"w") + 3 + 8 * 2
    low_bits_at = head + 4 + 8
    bad = bytearray(body)
    bad[low_bits_at] = 60  # more low bits than any value holds
    with pytest.raises(FormatError, match="damaged quantizer"):
        unpack(_with_crc(bytes(bad)))
    bad = bytearray(body)
    bad[head:head + 4] = struct.pack("<f", 0.5)  # a step on a bfloat16 record
    with pytest.raises(FormatError, match="damaged quantizer"):
        unpack(_with_crc(bytes(bad)))
    # Low bits that do not match the decoded high symbols: caught when the tensor is decoded.
    short = pack([type(record)(**{**record.__dict__, "low": record.low[:-1]})])
    with pytest.raises(FormatError, match="low bits"):
        decompress_record(unpack(short)[0])


def test_cli_lossless_round_trip_of_a_bf16_state_dict(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.Linear(128, 10)).to(torch.bfloat16)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    runner = CliRunner()
    result = runner.invoke(main, ["weights", "compress", str(tmp_path / "m.pt"), "--lossless"])
    assert result.exit_code == 0, result.output
    assert "lossless" in result.stderr
    result = runner.invoke(main, ["weights", "decompress", str(tmp_path / "m.shaw")])
    assert result.exit_code == 0, result.output
    restored = torch.load(tmp_path / "m.decoded.pt")
    for name, tensor in model.state_dict().items():
        assert restored[name].dtype == torch.bfloat16 and torch.equal(restored[name], tensor), name
    info = runner.invoke(main, ["weights", "info", str(tmp_path / "m.shaw")])
    assert "16-bit exact" in info.output
    refused = runner.invoke(main, ["weights", "compress", str(tmp_path / "m.pt"), "--lossless", "--bits-per-weight",
                                   "4", "-f"])
    assert refused.exit_code != 0 and "--lossless" in refused.output


def test_lossless_float16_tensors_keep_their_bits_and_dtype() -> None:
    rng = np.random.default_rng(4)
    weight = rng.normal(0, 0.02, (96, 200)).astype(np.float16)
    weight[rng.random(weight.shape) < 0.2] = 0
    (record,) = unpack(pack(compress_tensors({"w": (weight, "<f2")}, WeightCodecConfig(lossless=True))))
    assert record.codec == CODEC_EXACT16
    decoded = decompress_record(record)
    assert decoded.dtype == np.float16 and np.array_equal(decoded.view(np.uint16), weight.view(np.uint16))
    assert len(record.payload) + len(record.low) < 0.8 * weight.nbytes


def test_tampered_split_records_fail_cleanly() -> None:
    """Seeded tampering of a file with both split codecs, the CRC fixed each time: every case
    either decodes to arrays of the claimed shapes or is one FormatError, never another error."""
    rng = np.random.default_rng(7)
    fine = rng.normal(0, 1, (48, 96)).astype(np.float32)
    tensors = {"fine": (fine, "<f4"), "half": (rng.normal(0, 0.1, (40, 64)).astype(np.float16), "<f2")}
    records = compress_tensors({"fine": tensors["fine"]}, WeightCodecConfig(target_bits_per_weight=13, deadzone=0))
    records += compress_tensors({"half": tensors["half"]}, WeightCodecConfig(lossless=True))
    assert [r.codec for r in records] == [CODEC_FINE, CODEC_EXACT16]
    body = bytearray(pack(records)[:-4])
    outcomes = {"decoded": 0, "refused": 0}
    for case in range(600):
        bad = bytearray(body)
        for _ in range(1 + case % 3):
            at = int(rng.integers(10, len(bad)))
            bad[at] = int(rng.integers(0, 256)) if case % 2 else bad[at] ^ (1 << int(rng.integers(0, 8)))
        try:
            for record in unpack(_with_crc(bytes(bad))):
                assert decompress_record(record).shape == record.shape
            outcomes["decoded"] += 1
        except FormatError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and sum(outcomes.values()) == 600


def test_damaged_float32_records_are_format_errors() -> None:
    weight = np.random.default_rng(4).normal(0, 1, (64, 64)).astype(np.float32)
    data = pack(compress_tensors({"w": (weight, "<f4")}, WeightCodecConfig(lossless=True)))
    (record,) = unpack(data)
    assert record.codec == CODEC_EXACT32
    body = bytearray(data[:-4])
    dtype_at = 10 + 2 + len(b"w")
    body[dtype_at] = 1  # float16: a 32-bit pattern cannot be one
    with pytest.raises(FormatError, match="damaged quantizer"):
        unpack(_with_crc(bytes(body)))
    older = bytearray(data[:-4])
    older[4] = FINE_VERSION  # a version-4 file cannot hold codec 7
    with pytest.raises(FormatError, match="unknown dtype, codec or rank"):
        unpack(_with_crc(bytes(older)))
