"""The versioned ``.shae`` container: a small header, typed segments, and a CRC32 trailer.

The container knows nothing about how the latent is coded; it only frames the bytes so that a
decoder can tell, before doing any work, whether a file is a ``.shae`` file at all, whether this
install can read its version, and whether it arrived intact. ``docs/format.md`` describes the
byte layout for other implementations.

Layout (all integers little-endian)::

    offset  size  field
         0     4  magic b"SHAE"
         4     1  format version (u8), 1 to 3 (docs/format.md)
         5     1  flags (u8), reserved, must be 0
         6     8  model id (first 8 bytes of the SHA-256 of the model weights)
        14     1  quality level (u8)
        15     4  width in pixels (u32, 1..MAX_SIDE)
        19     4  height in pixels (u32, 1..MAX_SIDE)
        23     1  segment count (u8)
        24        segments, each: kind (u8), payload length (u32), payload
    end - 4    4  CRC32 (zlib.crc32) of every byte before it (u32)

``unpack`` never trusts a field before it has been checked: it reads only fixed-size integers
at offsets it has bounds-checked, verifies the total length and the checksum before validating
any field, and never allocates memory based on a length it read from the file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from imgcodec.errors import FormatError

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_SIDE",
    "SEGMENT_ALPHA",
    "SEGMENT_HEADER_SIZE",
    "SEGMENT_LATENT",
    "SEGMENT_LEVEL_STEP",
    "SEGMENT_NAMES",
    "TRAILER_SIZE",
    "Segment",
    "ShaeFile",
    "describe",
    "overhead_bytes",
    "pack",
    "unpack",
]

MAGIC = b"SHAE"
FORMAT_VERSION = 3  # the newest version this module reads and writes
MAX_SIDE = 65535
"""The largest width or height the container can describe (codec limits are stricter)."""

SEGMENT_LATENT = 1
SEGMENT_ALPHA = 2
SEGMENT_ICC = 3  # format version 2: the input's ICC colour profile
SEGMENT_EXIF = 4  # format version 2: its EXIF block (TIFF-structured, as Pillow's Exif.tobytes)
SEGMENT_XMP = 5  # format version 2: its XMP packet (UTF-8 XML)
#: format version 3: a position between the header's level and the next (u16 t, the gains
#: interpolated at t / 65536 of the way; models with level interpolation only, e.g. shae-v9)
SEGMENT_LEVEL_STEP = 6

SEGMENT_NAMES: Mapping[int, str] = MappingProxyType({SEGMENT_LATENT: "latent", SEGMENT_ALPHA: "alpha",
                                                     SEGMENT_ICC: "icc", SEGMENT_EXIF: "exif",
                                                     SEGMENT_XMP: "xmp", SEGMENT_LEVEL_STEP: "level-step"})
#: Segment kinds and flags each format version may use; a writer uses the lowest version that
#: holds the file, so files without metadata stay readable by version-1 readers.
VERSION_KINDS: Mapping[int, frozenset[int]] = MappingProxyType({1: frozenset({1, 2}), 2: frozenset({1, 2, 3, 4, 5}),
                                                                3: frozenset({1, 2, 3, 4, 5, 6})})
VERSION_FLAGS: Mapping[int, int] = MappingProxyType({1: 0x00, 2: 0x01, 3: 0x01})
FLAG_GRAY = 0x01  # format version 2: the image is greyscale (decoders write one channel)
"""Human names of the segment kinds this version knows (read-only)."""

MODEL_ID_SIZE = 8
MAX_SEGMENTS = 255
MAX_PAYLOAD = 0xFFFFFFFF

# magic, version, flags, model id, level, width, height, segment count
_HEADER = struct.Struct("<4sBB8sBIIB")
_SEGMENT = struct.Struct("<BI")
_CRC = struct.Struct("<I")

HEADER_SIZE = _HEADER.size  # 24
SEGMENT_HEADER_SIZE = _SEGMENT.size  # 5
TRAILER_SIZE = _CRC.size  # 4

# Signatures of common image formats, so that a renamed image gets a helpful message.
_FOREIGN_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"BM", "BMP image"),
    (b"RIFF", "RIFF file (WebP image?)"),
)


@dataclass(frozen=True)
class Segment:
    """One typed chunk of a ``.shae`` file, e.g. the coded latent or the coded alpha channel."""

    kind: int
    payload: bytes


@dataclass(frozen=True)
class ShaeFile:
    """The decoded contents of a ``.shae`` file.

    Construction validates every field, so an invalid ``ShaeFile`` cannot exist; a bad value
    raises ``ValueError`` because it is a programming error, not a user error.
    """

    model_id: bytes
    level: int
    width: int
    height: int
    segments: tuple[Segment, ...]
    gray: bool = False  # the encoder saw a greyscale image (format version 2)

    @property
    def version(self) -> int:
        """The lowest format version that holds this file."""
        if any(s.kind not in VERSION_KINDS[2] for s in self.segments):
            return 3
        needs_2 = self.gray or any(s.kind not in VERSION_KINDS[1] for s in self.segments)
        return 2 if needs_2 else 1

    def __post_init__(self) -> None:
        if not isinstance(self.model_id, bytes) or len(self.model_id) != MODEL_ID_SIZE:
            raise ValueError(f"model_id must be exactly {MODEL_ID_SIZE} bytes")
        if not 0 <= self.level <= 255:
            raise ValueError(f"level must be in 0..255, got {self.level}")
        for name, side in (("width", self.width), ("height", self.height)):
            if not 1 <= side <= MAX_SIDE:
                raise ValueError(f"{name} must be in 1..{MAX_SIDE}, got {side}")
        # Accept any iterable of segments but store a tuple, so the object stays immutable.
        segments = tuple(self.segments)
        object.__setattr__(self, "segments", segments)
        if len(segments) > MAX_SEGMENTS:
            raise ValueError(f"at most {MAX_SEGMENTS} segments are allowed")
        seen: set[int] = set()
        for seg in segments:
            if seg.kind not in SEGMENT_NAMES:
                raise ValueError(f"unknown segment kind {seg.kind}")
            if seg.kind in seen:
                raise ValueError(f"duplicate segment kind {seg.kind}")
            seen.add(seg.kind)
            if not isinstance(seg.payload, bytes):
                raise ValueError("segment payload must be bytes")
            if not 1 <= len(seg.payload) <= MAX_PAYLOAD:
                raise ValueError(f"segment payload must be 1..{MAX_PAYLOAD} bytes")

    def segment(self, kind: int) -> Segment | None:
        """Return the segment of the given kind, or None if the file has none."""
        for seg in self.segments:
            if seg.kind == kind:
                return seg
        return None


def container_bytes(num_segments: int = 1) -> int:
    """Bytes the container adds around num_segments payloads (header, segment headers,
    checksum); one segment is an RGB image's latent."""
    return HEADER_SIZE + SEGMENT_HEADER_SIZE * num_segments + TRAILER_SIZE


def overhead_bytes(f: ShaeFile) -> int:
    """Bytes the container adds around this file's payloads."""
    return container_bytes(len(f.segments))


def describe(f: ShaeFile) -> list[tuple[str, int]]:
    """List (segment name, payload length in bytes) in file order, for ``shaec info``.

    The file size is ``sum(lengths) + overhead_bytes(f)``.
    """
    return [(SEGMENT_NAMES[seg.kind], len(seg.payload)) for seg in f.segments]


def pack(f: ShaeFile) -> bytes:
    """Serialize a ``ShaeFile`` to the bytes of a ``.shae`` file."""
    parts = [
        _HEADER.pack(MAGIC, f.version, FLAG_GRAY if f.gray else 0, f.model_id, f.level, f.width, f.height,
                     len(f.segments))
    ]
    for seg in f.segments:
        parts.append(_SEGMENT.pack(seg.kind, len(seg.payload)))
        parts.append(seg.payload)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def _not_shae_message(data: bytes) -> str:
    for signature, what in _FOREIGN_SIGNATURES:
        if data.startswith(signature):
            return f"not a .shae file (it looks like a {what})"
    return "not a .shae file"


def _crc_ok(view: memoryview, end: int) -> bool:
    """Whether the 4 bytes at ``end`` hold the CRC32 of ``view[:end]`` (``end + 4 <= len``)."""
    (stored,) = _CRC.unpack_from(view, end)
    return zlib.crc32(view[:end]) == stored


def unpack(data: bytes) -> ShaeFile:
    """Parse and fully validate the bytes of a ``.shae`` file.

    Raises ``FormatError`` (and nothing else) with one human sentence if the data is not a
    ``.shae`` file, was written by a newer format version, is truncated, corrupted, or
    malformed.
    """
    try:
        view = memoryview(data).cast("B")
    except TypeError:
        raise FormatError("not a .shae file (expected bytes)") from None
    size = len(view)

    # 1. Identity: magic, then version. Nothing else is read until these pass.
    if size == 0:
        raise FormatError("not a .shae file (the file is empty)")
    head = bytes(view[:8])
    if head[:4] != MAGIC:
        if size < len(MAGIC) and MAGIC.startswith(head):
            raise FormatError("file is truncated")
        raise FormatError(_not_shae_message(head))
    if size <= 4:
        raise FormatError("file is truncated")
    version = view[4]
    if version > FORMAT_VERSION:
        raise FormatError(
            f"made by a newer shaec (format version {version}); "
            f"this install reads version {FORMAT_VERSION}"
        )
    if version < 1:
        raise FormatError(f"unsupported format version {version}")

    # 2. Total length: walk the segment table using only bounds-checked fixed-size reads.
    if size < HEADER_SIZE + TRAILER_SIZE:
        raise FormatError("file is truncated")
    _, _, flags, model_id, level, width, height, count = _HEADER.unpack_from(view, 0)
    offset = HEADER_SIZE
    spans: list[tuple[int, int, int]] = []  # (kind, start, length); at most 255 entries
    for _ in range(count):
        if offset + SEGMENT_HEADER_SIZE + TRAILER_SIZE > size:
            raise FormatError("file is truncated")
        kind, length = _SEGMENT.unpack_from(view, offset)
        offset += SEGMENT_HEADER_SIZE
        spans.append((kind, offset, length))
        offset += length
        if offset + TRAILER_SIZE > size:
            # Either a real truncation or a corrupted length; the end of the data cannot be
            # found, so the checksum cannot be checked either.
            raise FormatError("file is truncated")
    end = offset  # where the CRC must start

    # 3. Checksum, before any field is trusted.
    if end + TRAILER_SIZE < size:
        if _crc_ok(view, end):
            extra = size - end - TRAILER_SIZE
            raise FormatError(f"{extra} unexpected byte{'s' if extra != 1 else ''} after the end of the file")
        if _crc_ok(view, size - TRAILER_SIZE):
            raise FormatError("malformed file: the segment table does not match the file length")
        raise FormatError("checksum mismatch: the file is corrupted")
    if not _crc_ok(view, end):
        raise FormatError("checksum mismatch: the file is corrupted")

    # 4. Field validation: the bytes are what the writer wrote, so these are writer errors.
    if flags & ~VERSION_FLAGS[version]:
        raise FormatError(f"uses flags this shaec does not know (0x{flags:02x})")
    for name, side in (("width", width), ("height", height)):
        if not 1 <= side <= MAX_SIDE:
            raise FormatError(f"invalid image {name} {side} (must be 1..{MAX_SIDE})")
    seen: set[int] = set()
    for kind, _, length in spans:
        if kind not in VERSION_KINDS[version]:
            raise FormatError(f"unknown segment kind {kind}")
        if kind in seen:
            raise FormatError(f"duplicate {SEGMENT_NAMES[kind]} segment")
        seen.add(kind)
        if length == 0:
            raise FormatError(f"empty {SEGMENT_NAMES[kind]} segment")

    segments = tuple(Segment(kind, bytes(view[start : start + length])) for kind, start, length in spans)
    try:
        return ShaeFile(model_id=model_id, level=level, width=width, height=height, segments=segments,
                        gray=bool(flags & FLAG_GRAY))
    except ValueError as exc:  # pragma: no cover - every case is checked above
        raise FormatError(f"malformed file: {exc}") from None
