"""Tests for the .shae container: round trips, the documented layout, and hostile inputs."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imgcodec.bitstream import (
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    MAX_SIDE,
    SEGMENT_ALPHA,
    SEGMENT_LATENT,
    Segment,
    ShaeFile,
    describe,
    overhead_bytes,
    pack,
    unpack,
)
from imgcodec.errors import FormatError

MODEL_ID = bytes(range(1, 9))


def make_file(latent: bytes = b"latent-bytes", alpha: bytes | None = b"\x01\x02\x03") -> ShaeFile:
    segments = [Segment(SEGMENT_LATENT, latent)]
    if alpha is not None:
        segments.append(Segment(SEGMENT_ALPHA, alpha))
    return ShaeFile(model_id=MODEL_ID, level=2, width=640, height=480, segments=tuple(segments))


def raw_file(
    *,
    version: int = FORMAT_VERSION,
    flags: int = 0,
    width: int = 4,
    height: int = 3,
    segments: list[tuple[int, bytes]] | None = None,
    trailing: bytes = b"",
) -> bytes:
    """Build container bytes by hand, with a valid CRC, bypassing pack()'s validation."""
    if segments is None:
        segments = [(SEGMENT_LATENT, b"xyz")]
    body = MAGIC + struct.pack("<BB8sBIIB", version, flags, MODEL_ID, 1, width, height, len(segments))
    for kind, payload in segments:
        body += struct.pack("<BI", kind, len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body)) + trailing


def message_of(data: bytes) -> str:
    with pytest.raises(FormatError) as info:
        unpack(data)
    text = str(info.value)
    assert text and "\n" not in text
    return text


# --- round trips and layout ------------------------------------------------------------------


def test_round_trip() -> None:
    f = make_file()
    assert unpack(pack(f)) == f


def test_round_trip_without_alpha_and_extremes() -> None:
    f = ShaeFile(model_id=b"\xff" * 8, level=255, width=MAX_SIDE, height=1, segments=(Segment(SEGMENT_LATENT, b"\x00"),))
    assert unpack(pack(f)) == f
    g = ShaeFile(model_id=b"\x00" * 8, level=0, width=1, height=MAX_SIDE, segments=())
    assert unpack(pack(g)) == g


def test_round_trip_large_payload() -> None:
    payload = np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    f = make_file(latent=payload)
    assert unpack(pack(f)).segment(SEGMENT_LATENT).payload == payload


def test_segment_order_is_kept() -> None:
    f = ShaeFile(MODEL_ID, 1, 2, 2, (Segment(SEGMENT_ALPHA, b"a"), Segment(SEGMENT_LATENT, b"l")))
    assert [s.kind for s in unpack(pack(f)).segments] == [SEGMENT_ALPHA, SEGMENT_LATENT]


def test_layout_matches_documentation() -> None:
    data = pack(make_file(latent=b"LL", alpha=b"A"))
    assert data[0:4] == b"SHAE"
    assert data[4] == 1 and data[5] == 0
    assert data[6:14] == MODEL_ID
    assert data[14] == 2
    assert struct.unpack_from("<II", data, 15) == (640, 480)
    assert data[23] == 2
    assert HEADER_SIZE == 24
    assert data[24] == SEGMENT_LATENT and struct.unpack_from("<I", data, 25) == (2,) and data[29:31] == b"LL"
    assert data[31] == SEGMENT_ALPHA and struct.unpack_from("<I", data, 32) == (1,) and data[36:37] == b"A"
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    assert len(data) == 37 + 4


def test_segment_lookup_describe_and_overhead() -> None:
    f = make_file(latent=b"x" * 10, alpha=b"y" * 3)
    assert f.segment(SEGMENT_LATENT) == Segment(SEGMENT_LATENT, b"x" * 10)
    assert make_file(alpha=None).segment(SEGMENT_ALPHA) is None
    assert describe(f) == [("latent", 10), ("alpha", 3)]
    assert len(pack(f)) == overhead_bytes(f) + sum(n for _, n in describe(f))


def test_segments_are_stored_as_tuple() -> None:
    f = ShaeFile(MODEL_ID, 1, 2, 2, [Segment(SEGMENT_LATENT, b"l")])  # type: ignore[arg-type]
    assert isinstance(f.segments, tuple)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model_id": b"short"},
        {"model_id": b"123456789"},
        {"level": 256},
        {"level": -1},
        {"width": 0},
        {"height": MAX_SIDE + 1},
        {"segments": (Segment(SEGMENT_LATENT, b"a"), Segment(SEGMENT_LATENT, b"b"))},
        {"segments": (Segment(SEGMENT_LATENT, b""),)},
        {"segments": (Segment(99, b"a"),)},
    ],
)
def test_invalid_files_cannot_be_built(kwargs: dict) -> None:
    fields = {"model_id": MODEL_ID, "level": 1, "width": 2, "height": 2, "segments": (Segment(SEGMENT_LATENT, b"a"),)}
    fields.update(kwargs)
    with pytest.raises(ValueError):
        ShaeFile(**fields)


def test_bytearray_and_memoryview_are_accepted() -> None:
    data = pack(make_file())
    assert unpack(bytearray(data)) == unpack(memoryview(data)) == make_file()


# --- identity: magic and version -------------------------------------------------------------


def test_empty_input() -> None:
    assert "not a .shae file" in message_of(b"")


def test_png_bytes_are_not_shae() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    text = message_of(buf.getvalue())
    assert "not a .shae file" in text and "PNG" in text


def test_jpeg_bytes_are_not_shae() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    text = message_of(buf.getvalue())
    assert "not a .shae file" in text and "JPEG" in text


def test_text_is_not_shae() -> None:
    assert message_of(b"hello, world\n") == "not a .shae file"


def test_non_bytes_input() -> None:
    with pytest.raises(FormatError):
        unpack("SHAE")  # type: ignore[arg-type]


def test_newer_version() -> None:
    text = message_of(raw_file(version=4))
    assert "newer shaec" in text and "format version 4" in text and "reads version 3" in text


def test_level_step_segment_needs_version_3() -> None:
    from imgcodec.bitstream import SEGMENT_LEVEL_STEP

    plain = ShaeFile(bytes(8), 2, 16, 16, (Segment(SEGMENT_LATENT, b"\x00" * 8),))
    stepped = ShaeFile(bytes(8), 2, 16, 16, (Segment(SEGMENT_LATENT, b"\x00" * 8),
                                              Segment(SEGMENT_LEVEL_STEP, b"\x00\x80")))
    assert plain.version == 1 and stepped.version == 3
    assert unpack(pack(stepped)) == stepped
    data = bytearray(pack(stepped))
    data[4] = 2  # the same file claiming version 2 may not hold kind 6
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")
    with pytest.raises(FormatError):
        unpack(bytes(data))


def test_newer_version_with_a_different_layout() -> None:
    # A future version may change everything after the version byte.
    assert "newer shaec" in message_of(MAGIC + bytes([7]) + b"anything")


def test_version_zero() -> None:
    assert "version 0" in message_of(raw_file(version=0))


# --- length and checksum -----------------------------------------------------------------------


def test_every_truncation_fails() -> None:
    data = pack(make_file(latent=b"0123456789abcdef", alpha=b"\x00\x01"))
    for n in range(len(data)):
        with pytest.raises(FormatError):
            unpack(data[:n])
    assert message_of(data[:-1]) == "file is truncated"
    assert message_of(data[:10]) == "file is truncated"
    assert message_of(data[:2]) == "file is truncated"


def test_single_bit_flips_are_all_detected() -> None:
    rng = np.random.default_rng(20240601)
    latent = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    alpha = rng.integers(0, 256, 50, dtype=np.uint8).tobytes()
    data = pack(make_file(latent=latent, alpha=alpha))
    positions = rng.integers(0, len(data) * 8, 2000)
    for bit in positions:
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FormatError):
            unpack(bytes(flipped))


def test_every_single_bit_flip_of_a_small_file() -> None:
    data = pack(make_file(latent=b"abc", alpha=b"d"))
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FormatError):
            unpack(bytes(flipped))


def test_payload_corruption_is_a_checksum_mismatch() -> None:
    data = bytearray(pack(make_file()))
    data[HEADER_SIZE + 7] ^= 0x10  # inside the latent payload
    assert message_of(bytes(data)) == "checksum mismatch: the file is corrupted"


def test_trailing_bytes() -> None:
    assert "after the end of the file" in message_of(pack(make_file()) + b"\x00\x00")
    assert "after the end of the file" in message_of(raw_file(trailing=b"!"))


def test_huge_length_field_does_not_allocate() -> None:
    data = bytearray(raw_file())
    struct.pack_into("<I", data, HEADER_SIZE + 1, 0xFFFFFFFF)
    assert message_of(bytes(data)) == "file is truncated"


def test_segment_table_inconsistent_with_valid_crc() -> None:
    # Segment count says 0 but a segment follows, and the CRC covers everything.
    body = MAGIC + struct.pack("<BB8sBIIB", 1, 0, MODEL_ID, 1, 4, 3, 0) + struct.pack("<BI", 1, 1) + b"x"
    data = body + struct.pack("<I", zlib.crc32(body))
    assert "malformed" in message_of(data)


# --- fields that are only checked once the checksum is good -----------------------------------


def test_unknown_segment_kind() -> None:
    assert "unknown segment kind 9" in message_of(raw_file(segments=[(SEGMENT_LATENT, b"x"), (9, b"y")]))


def test_duplicate_segment_kind() -> None:
    assert "duplicate" in message_of(raw_file(segments=[(SEGMENT_ALPHA, b"x"), (SEGMENT_ALPHA, b"y")]))


def test_zero_size_segment() -> None:
    assert "empty" in message_of(raw_file(segments=[(SEGMENT_LATENT, b"")]))


@pytest.mark.parametrize("width,height", [(0, 3), (4, 0), (MAX_SIDE + 1, 3), (4, 0xFFFFFFFF)])
def test_bad_dimensions(width: int, height: int) -> None:
    assert "invalid image" in message_of(raw_file(width=width, height=height))


def test_reserved_flags() -> None:
    assert "flags" in message_of(raw_file(version=1, flags=1))  # version 1 has no flags
    assert "flags" in message_of(raw_file(version=2, flags=2))  # version 2 knows only the grey flag
    assert unpack(raw_file(version=2, flags=1)).gray


def test_metadata_kinds_need_version_2() -> None:
    assert "unknown segment kind 3" in message_of(raw_file(version=1, segments=[(SEGMENT_LATENT, b"a"), (3, b"icc")]))
    f = unpack(raw_file(version=2, segments=[(SEGMENT_LATENT, b"a"), (3, b"icc"), (4, b"exif"), (5, b"xmp")]))
    assert describe(f) == [("latent", 1), ("icc", 3), ("exif", 4), ("xmp", 3)]


def test_writer_uses_the_lowest_version_that_holds_the_file() -> None:
    plain = ShaeFile(MODEL_ID, 1, 4, 3, (Segment(SEGMENT_LATENT, b"abc"),))
    assert pack(plain)[4] == 1 and pack(plain)[5] == 0
    gray = ShaeFile(MODEL_ID, 1, 4, 3, (Segment(SEGMENT_LATENT, b"abc"),), gray=True)
    assert pack(gray)[4] == 2 and pack(gray)[5] == 1 and unpack(pack(gray)) == gray


def test_valid_hand_built_file() -> None:
    f = unpack(raw_file(segments=[(SEGMENT_LATENT, b"abc"), (SEGMENT_ALPHA, b"d")]))
    assert (f.width, f.height, f.level, f.model_id) == (4, 3, 1, MODEL_ID)
    assert describe(f) == [("latent", 3), ("alpha", 1)]


# --- random input ------------------------------------------------------------------------------


def test_random_bytes() -> None:
    rng = np.random.default_rng(7)
    for _ in range(500):
        n = int(rng.integers(0, 200))
        blob = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        for data in (blob, MAGIC + blob, MAGIC + b"\x01" + blob):
            with pytest.raises(FormatError):
                unpack(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_format_error(tail: bytes) -> None:
    for data in (tail, MAGIC + b"\x01" + tail):
        try:
            f = unpack(data)
        except FormatError:
            continue
        assert pack(f) == data  # anything accepted is exactly what pack would write


@settings(max_examples=100, deadline=None)
@given(
    model_id=st.binary(min_size=8, max_size=8),
    level=st.integers(0, 255),
    width=st.integers(1, MAX_SIDE),
    height=st.integers(1, MAX_SIDE),
    latent=st.binary(min_size=1, max_size=64),
    alpha=st.none() | st.binary(min_size=1, max_size=64),
)
def test_round_trip_property(model_id: bytes, level: int, width: int, height: int, latent: bytes, alpha: bytes | None) -> None:
    segments = (Segment(SEGMENT_LATENT, latent),) + (() if alpha is None else (Segment(SEGMENT_ALPHA, alpha),))
    f = ShaeFile(model_id=model_id, level=level, width=width, height=height, segments=segments)
    assert unpack(pack(f)) == f
