"""Forged, truncated and tampered .shae files: a clean error or a bounded decode, never a hang.

Every file here has a valid CRC32 (the forger recomputes it), so only the decoder's own checks
stand between it and the work the header claims.
"""
from __future__ import annotations

import dataclasses
import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from imgcodec import bitstream
from imgcodec.codec import DEFAULT_MAX_DECODE_PIXELS, compress, decompress
from imgcodec.errors import ShaecError
from imgcodec.imageio import alpha_max_pixels, load_image

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "coffee.png"


@pytest.fixture(scope="module", params=["shae-v11", "shae-v8"])
def honest(request: pytest.FixtureRequest) -> bitstream.ShaeFile:
    """A 48x64 crop of a real photo at q4 by each shipped decoder's model (the default, and the
    one before it, whose files users still hold): a payload of a few hundred bytes."""
    rgb = load_image(str(SAMPLE)).rgb[100:148, 200:264]
    return bitstream.unpack(compress(np.ascontiguousarray(rgb), 4, model=request.param))


def _raw_with_segment(shae: bitstream.ShaeFile, kind: int, payload: bytes) -> bytes:
    """The file plus a segment of any kind (even one pack refuses), with the CRC fixed."""
    body = bytearray(bitstream.pack(shae)[:-4])
    body[23] += 1  # segment count, the header's last byte
    body += struct.pack("<BI", kind, len(payload)) + payload
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


def _with(shae: bitstream.ShaeFile, **changes: object) -> bytes:
    return bitstream.pack(dataclasses.replace(shae, **changes))


def _latent(shae: bitstream.ShaeFile, payload: bytes) -> bytes:
    segments = tuple(dataclasses.replace(s, payload=payload) if s.kind == bitstream.SEGMENT_LATENT else s
                     for s in shae.segments)
    return _with(shae, segments=segments)


def test_tiny_file_claiming_16384_squared_is_refused_at_once() -> None:
    tiny = bitstream.unpack(compress(np.zeros((8, 8, 3), np.uint8), 1))
    bomb = _with(tiny, width=16384, height=16384)
    assert len(bomb) < 64
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ShaecError, match="too short|decoding limit"):
        decompress(bomb, max_pixels=0)  # even with the pixel limit lifted
    assert time.perf_counter() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB
    with pytest.raises(ShaecError, match="decoding limit"):
        decompress(bomb)  # the default limit refuses it first


def test_pixel_limit_is_explicit_and_can_be_raised(honest: bitstream.ShaeFile) -> None:
    data = bitstream.pack(honest)
    assert DEFAULT_MAX_DECODE_PIXELS >= 100_000_000
    with pytest.raises(ShaecError, match="decoding limit of 1000"):
        decompress(data, max_pixels=1000)
    assert decompress(data, max_pixels=48 * 64).shape == (48, 64, 3)


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.9])
def test_truncated_payload_behind_a_valid_crc_is_refused(honest: bitstream.ShaeFile, keep: float) -> None:
    payload = honest.segment(bitstream.SEGMENT_LATENT).payload
    assert len(payload) > 100
    with pytest.raises(ShaecError):
        decompress(_latent(honest, payload[:int(keep * len(payload)) // 4 * 4]))


def test_trailing_garbage_in_the_payload_is_refused(honest: bitstream.ShaeFile) -> None:
    payload = honest.segment(bitstream.SEGMENT_LATENT).payload
    with pytest.raises(ShaecError, match="does not end with the image"):
        decompress(_latent(honest, payload + bytes(8)))


def test_alpha_is_checked_before_the_latent_is_decoded(honest: bitstream.ShaeFile, monkeypatch) -> None:
    """A wrong-size alpha plane is refused before any symbol is decoded."""
    from imgcodec import coder
    from imgcodec.imageio import encode_alpha

    def no_latent_decode(*args: object) -> None:
        raise AssertionError("the latent was decoded before the alpha segment was checked")

    monkeypatch.setattr("imgcodec.codec.decode_symbols", no_latent_decode)  # shae-v8's
    monkeypatch.setattr("imgcodec.hyperprior.HyperpriorTables.decode", no_latent_decode)  # shae-v9's
    wrong = bitstream.Segment(bitstream.SEGMENT_ALPHA, encode_alpha(np.zeros((10, 10), np.uint8)))
    with pytest.raises(ShaecError, match="10x10 pixels but the image is 64x48"):
        decompress(_with(honest, segments=honest.segments + (wrong,)))
    assert coder  # the real decoder is untouched outside this test


def test_encoder_never_writes_an_alpha_plane_it_could_not_read() -> None:
    from imgcodec.codec import get_codec

    side = int(alpha_max_pixels() ** 0.5) + 1
    image = np.zeros((side, side, 4), np.uint8)  # 4 bytes per pixel: about 0.7 GB
    image[0, 0, 3] = 7
    with pytest.raises(ShaecError, match="alpha may have at most"):
        get_codec().encode(image, 1)


def test_fuzzed_files_fail_cleanly_and_quickly(honest: bitstream.ShaeFile) -> None:
    """Seeded tampering of header fields, segments and payload bytes, each with a fixed CRC:
    every case ends in ShaecError or a decoded image of the declared size, within a time bound."""
    rng = np.random.default_rng(2026)
    payload = honest.segment(bitstream.SEGMENT_LATENT).payload
    started = time.perf_counter()
    outcomes = {"error": 0, "decoded": 0}
    for case in range(3000):
        kind = case % 5
        if kind == 0:  # header sizes, up to bombs
            width, height = (int(v) for v in rng.integers(1, 16385, 2))
            data = _with(honest, width=width, height=height)
        elif kind == 1:  # level
            data = _with(honest, level=int(rng.integers(0, 256)))
        elif kind == 2:  # flipped payload bytes
            flipped = bytearray(payload)
            for pos in rng.integers(0, len(flipped), int(rng.integers(1, 6))):
                flipped[pos] ^= int(rng.integers(1, 256))
            data = _latent(honest, bytes(flipped))
        elif kind == 3:  # cut or extended payload
            n = int(rng.integers(1, len(payload)))
            data = _latent(honest, payload[:n] if rng.random() < 0.5 else payload + rng.bytes(n % 64))
        else:  # extra or unknown segments, or none
            kind_byte = int(rng.integers(0, 256))
            data = (_with(honest, segments=()) if rng.random() < 0.1 else
                    _raw_with_segment(honest, kind_byte, rng.bytes(int(rng.integers(0, 64)))))
        t0 = time.perf_counter()
        try:
            image = decompress(data)
        except ShaecError:
            outcomes["error"] += 1
        else:
            shae = bitstream.unpack(data)
            assert image.shape[:2] == (shae.height, shae.width)
            outcomes["decoded"] += 1
        assert time.perf_counter() - t0 < 5.0, f"case {case} took too long"
    assert outcomes["error"] > 1500 and time.perf_counter() - started < 120


def test_reading_stops_at_the_input_limit(tmp_path, monkeypatch) -> None:
    """A .shae path that is a link to /dev/zero is refused after the limit, not read forever."""
    from click.testing import CliRunner

    from imgcodec.cli import main

    link = tmp_path / "zero.shae"
    link.symlink_to("/dev/zero")
    monkeypatch.setattr("imgcodec.batch.MAX_INPUT_BYTES", 1 << 20)
    for args in (["decode", str(link), "-o", str(tmp_path / "z.png")], ["info", str(link)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "input is larger than 1 MiB" in result.output
