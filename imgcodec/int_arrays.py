"""Compact, exact storage of 16-bit integer arrays in the models' .npz files.

The entropy models ship integer tables and integer network weights that must come back bit for
bit (they select the range coder's probabilities). np.savez_compressed deflates each array; how
the 16 bits are laid out decides how well that works:

- byte planes (uint8 2,...: the low bytes, then the high bytes) keep the high bytes, nearly
  constant, apart from the low ones;
- zigzag bytes map each value to 0, 1, 2, ... by magnitude (0, -1, 1, -2, ...), keep the values
  below ZIGZAG_ESCAPE as one byte each and the others, in order, in a uint16 array of escapes:
  values that cluster near zero then deflate to near their entropy, where a byte plane of their
  low bytes is close to uniform.

compact_16bit stores an array whichever way deflates smaller, read_16bit reads either.
"""
from __future__ import annotations

import zlib
from typing import Mapping

import numpy as np

#: A zigzag byte at this value stands for a value kept in the escapes array instead.
ZIGZAG_ESCAPE = 255


def byte_planes(values: np.ndarray) -> np.ndarray:
    """A 16-bit integer array ... -> uint8 2,...: the low bytes, then the high bytes."""
    unsigned = values.astype(np.int64) & 0xFFFF  # two's complement for int16
    return np.stack([unsigned & 0xFF, unsigned >> 8]).astype(np.uint8)


def from_byte_planes(planes: np.ndarray, dtype: type) -> np.ndarray:
    """The inverse of byte_planes, for dtype int16 or uint16."""
    if planes.dtype != np.uint8 or planes.ndim < 1 or planes.shape[0] != 2:
        raise ValueError(f"byte planes must be uint8 2,..., not {planes.dtype} {planes.shape}")
    unsigned = planes[0].astype(np.uint16) | (planes[1].astype(np.uint16) << np.uint16(8))
    return unsigned.view(np.int16) if np.dtype(dtype) == np.int16 else unsigned


def zigzag_bytes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16-bit integers (int16, or uint16 read as int16: differences modulo 2^16) -> (uint8 of the
    same shape, uint16 escapes in order)."""
    signed = values.astype(np.int64)
    signed = np.where(signed >= 1 << 15, signed - (1 << 16), signed)  # uint16 as int16
    mapped = np.where(signed >= 0, 2 * signed, -2 * signed - 1)  # 0 .. 65535
    escaped = mapped >= ZIGZAG_ESCAPE
    return np.where(escaped, ZIGZAG_ESCAPE, mapped).astype(np.uint8), mapped[escaped].astype(np.uint16)


def from_zigzag_bytes(small: np.ndarray, escapes: np.ndarray, dtype: type) -> np.ndarray:
    """The inverse of zigzag_bytes, for dtype int16 or uint16 (modulo 2^16)."""
    if small.dtype != np.uint8 or escapes.dtype != np.uint16 or escapes.ndim != 1:
        raise ValueError(f"zigzag bytes must be uint8 with uint16 escapes, not {small.dtype} and {escapes.dtype}")
    mapped = small.astype(np.uint16)
    escaped = small == ZIGZAG_ESCAPE
    if int(np.count_nonzero(escaped)) != escapes.size:
        raise ValueError(f"{int(np.count_nonzero(escaped))} escaped values but {escapes.size} escapes")
    mapped[escaped] = escapes
    unsigned = (mapped >> np.uint16(1)) ^ (np.uint16(0) - (mapped & np.uint16(1)))  # two's complement bits
    return unsigned.view(np.int16) if np.dtype(dtype) == np.int16 else unsigned


def deflated_size(array: np.ndarray) -> int:
    """Bytes of the array's data deflated as np.savez_compressed does (zlib's default level)."""
    return len(zlib.compress(array.tobytes()))


def compact_16bit(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays that store a 16-bit array under `name`: {NAME.zigzag, NAME.escapes} (zigzag
    bytes) or {NAME} (byte planes), whichever deflates smaller."""
    small, escapes = zigzag_bytes(values)
    planes = byte_planes(values)
    if deflated_size(small) + deflated_size(escapes) < deflated_size(planes):
        return {f"{name}.zigzag": small, f"{name}.escapes": escapes}
    return {name: planes}


def stored_names(arrays: Mapping[str, np.ndarray], name: str) -> list[str]:
    """The keys under which compact_16bit stored `name` in `arrays`."""
    return [f"{name}.zigzag", f"{name}.escapes"] if f"{name}.zigzag" in arrays else [name]


def read_16bit(arrays: Mapping[str, np.ndarray], name: str, dtype: type) -> np.ndarray:
    """The 16-bit array (dtype int16 or uint16) that compact_16bit stored under `name`; KeyError
    if it is missing, ValueError if it is malformed."""
    if f"{name}.zigzag" in arrays:
        return from_zigzag_bytes(arrays[f"{name}.zigzag"], arrays[f"{name}.escapes"], dtype)
    return from_byte_planes(arrays[name], dtype)
