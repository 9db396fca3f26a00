"""A PNG writer that takes the image band by band, so a decode never holds the whole picture.

Pillow encodes a PNG from a complete image (4 bytes per pixel in memory for RGB). The decoder
produces the image in bands of tiles (imgcodec.codec.Codec.decode_rows); this writes each band
as it comes: rows filtered with PNG's "Sub" filter, deflated through one zlib stream, IDAT
chunks as output accumulates (PNG specification, W3C 2003, sections 5, 9 and 11). Metadata go
where Pillow puts them: the ICC profile in iCCP, EXIF in eXIf, XMP in an iTXt chunk keyed
"XML:com.adobe.xmp".
"""
from __future__ import annotations

import struct
import zlib
from typing import BinaryIO, Iterable

import numpy as np

from .imageio import Metadata

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types by channel count: grey, grey + alpha, RGB, RGBA.
COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
FILTER_SUB = 1
#: zlib level 1, as the Pillow path uses (imageio._save_options): fast, files ~5 % larger.
DEFLATE_LEVEL = 1
IDAT_BYTES = 1 << 20  # flush an IDAT chunk once this much compressed data is waiting


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _metadata_chunks(metadata: Metadata) -> list[bytes]:
    chunks = []
    if metadata.icc:
        chunks.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(metadata.icc)))
    if metadata.exif:
        exif = metadata.exif[6:] if metadata.exif.startswith(b"Exif\x00\x00") else metadata.exif
        chunks.append(_chunk(b"eXIf", exif))
    if metadata.xmp:
        chunks.append(_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + metadata.xmp))
    return chunks


def sub_filtered(rows: np.ndarray) -> bytes:
    """rows: R,W,C uint8 -> the R filtered scanlines (filter byte 1, then each byte minus the
    byte C to its left, modulo 256)."""
    r, w, c = rows.shape
    flat = rows.reshape(r, w * c)
    out = np.empty((r, w * c + 1), dtype=np.uint8)
    out[:, 0] = FILTER_SUB
    out[:, 1:c + 1] = flat[:, :c]
    np.subtract(flat[:, c:], flat[:, :-c], out=out[:, c + 1:])  # uint8 arithmetic wraps mod 256
    return out.tobytes()


def write_png(out: BinaryIO, width: int, height: int, channels: int, bands: Iterable[np.ndarray],
              metadata: Metadata | None = None) -> None:
    """Write an 8-bit PNG of `channels` (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) from bands of
    rows (each R,width,channels uint8) that together have `height` rows, top to bottom."""
    if channels not in COLOUR_TYPE:
        raise ValueError(f"channels must be 1..4, got {channels}")
    out.write(SIGNATURE)
    out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPE[channels], 0, 0, 0)))
    for chunk in _metadata_chunks(metadata or Metadata()):
        out.write(chunk)
    deflate = zlib.compressobj(DEFLATE_LEVEL)
    waiting: list[bytes] = []
    waiting_bytes = rows_written = 0
    for band in bands:
        if band.dtype != np.uint8 or band.ndim != 3 or band.shape[1:] != (width, channels):
            raise ValueError(f"a band must be R,{width},{channels} uint8, got {band.dtype} {band.shape}")
        rows_written += band.shape[0]
        if rows_written > height:
            raise ValueError(f"the bands hold more than the {height} rows declared")
        piece = deflate.compress(sub_filtered(band))
        if piece:
            waiting.append(piece)
            waiting_bytes += len(piece)
        if waiting_bytes >= IDAT_BYTES:
            out.write(_chunk(b"IDAT", b"".join(waiting)))
            waiting, waiting_bytes = [], 0
    if rows_written != height:
        raise ValueError(f"the bands hold {rows_written} rows, not the {height} declared")
    waiting.append(deflate.flush())
    out.write(_chunk(b"IDAT", b"".join(waiting)))
    out.write(_chunk(b"IEND", b""))
