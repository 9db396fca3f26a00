"""safetensors files read and written with numpy alone: `shaec weights` without PyTorch.

The layout (Hugging Face's safetensors, the format most published models ship in): an unsigned
64-bit little-endian header length N, N bytes of a UTF-8 JSON object, then one byte buffer. The
object maps each tensor's name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
into the buffer, little-endian values in C order) and may hold "__metadata__", a map of strings.
A reader here checks every field before it touches the buffer, and the buffer is memory-mapped,
so a damaged or hostile file costs neither time nor memory beyond its tensors: offsets must
tile the buffer in order, without gaps or overlaps (as the reference reader requires), and each
tensor's bytes must match its dtype and shape. `__metadata__` is not kept in a .shaw file.

A model published in shards comes with NAME.safetensors.index.json, whose "weight_map" names
each tensor's shard (a file beside the index); the index stands for the whole model.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import ShaecError

#: safetensors dtype -> .shaw dtype name (imgcodec.weights.container.DTYPES)
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bfloat16", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "|i1", "U8": "|u1", "BOOL": "|b1"}
NAMES = {name: code for code, name in DTYPES.items()}
ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
#: The reference implementation refuses longer headers; so does this one (bounded parsing).
MAX_HEADER_BYTES = 100_000_000


#: The index of a sharded model (Hugging Face's layout).
INDEX_SUFFIX = ".safetensors.index.json"


def is_safetensors(path: Path) -> bool:
    """A safetensors file, or the index of a sharded one."""
    return path.suffix.lower() == ".safetensors" or is_index(path)


def is_index(path: Path) -> bool:
    return path.name.lower().endswith(INDEX_SUFFIX)


def model_stem(path: Path) -> str:
    """The model's name: NAME of NAME.safetensors.index.json, else the file's stem."""
    return path.name[:-len(INDEX_SUFFIX)] if is_index(path) else path.stem


def shard_paths(index: Path) -> dict[str, Path]:
    """tensor name -> its shard, from a sharded model's index; every shard a plain file name
    beside the index (no folders: an index must not reach elsewhere)."""
    if index.stat().st_size > MAX_HEADER_BYTES:
        raise ShaecError(f"{index}: an index of {index.stat().st_size} bytes is too large")
    try:
        content = json.loads(index.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShaecError(f"{index}: not a safetensors index ({str(exc)[:60]})") from None
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ShaecError(f"{index}: not a safetensors index (no weight_map of tensor names to shards)")
    shards = {}
    for name, shard in weight_map.items():
        if (not isinstance(shard, str) or Path(shard).name != shard or shard in (".", "..")
                or not shard.lower().endswith(".safetensors")):
            raise ShaecError(f"{index}: tensor {name!r} is in {shard!r}, not a .safetensors file beside the index")
        shards[name] = index.parent / shard
    return shards


def read_sharded(index: Path) -> dict[str, tuple[np.ndarray, str]]:
    """All tensors of a sharded model, in the index's order; each shard must hold exactly the
    tensors the index gives it."""
    shards = shard_paths(index)
    tensors: dict[str, tuple[np.ndarray, str]] = {}
    for shard in dict.fromkeys(shards.values()):
        if not shard.is_file():
            raise ShaecError(f"{index}: its shard {shard.name} is missing")
        held = read_safetensors(shard)
        listed = {n for n, s in shards.items() if s == shard}
        if set(held) != listed:
            extra, absent = sorted(set(held) - listed), sorted(listed - set(held))
            raise ShaecError(f"{shard}: " + (f"holds {extra[0]!r}, which the index puts elsewhere" if extra
                                             else f"lacks {absent[0]!r}, which the index puts there"))
        tensors.update(held)
    return {name: tensors[name] for name in shards}


def _fail(path: Path, why: str) -> ShaecError:
    return ShaecError(f"{path}: not a readable safetensors file ({why})")


def _entries(path: Path, header: object, buffer_bytes: int) -> list[tuple[str, str, tuple[int, ...], int, int]]:
    """The header's tensors as (name, dtype code, shape, begin, end), checked, in buffer order."""
    if not isinstance(header, dict):
        raise _fail(path, "its header is not a JSON object")
    entries = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _fail(path, "__metadata__ must map names to strings")
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _fail(path, f"tensor {name!r} needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str):
            raise _fail(path, f"tensor {name!r} has no dtype name")
        if dtype not in DTYPES:
            raise ShaecError(f"{path}: tensor {name!r} has dtype {dtype}, which shaec weights does not support "
                             f"(supported: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise _fail(path, f"tensor {name!r} has a bad shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets)
                and 0 <= offsets[0] <= offsets[1] <= buffer_bytes):
            raise _fail(path, f"tensor {name!r} has data_offsets outside the file")
        if offsets[1] - offsets[0] != math.prod(shape) * ITEM_BYTES[dtype]:
            raise _fail(path, f"tensor {name!r}: {offsets[1] - offsets[0]} bytes for shape {shape} of {dtype}")
        entries.append((name, dtype, tuple(shape), offsets[0], offsets[1]))
    entries.sort(key=lambda e: (e[3], e[4]))
    end = 0
    for name, _, _, begin, stop in entries:
        if begin != end:
            raise _fail(path, f"tensor {name!r} {'overlaps another' if begin < end else 'leaves a gap before it'}")
        end = stop
    if end != buffer_bytes:
        raise _fail(path, f"{buffer_bytes - end} bytes after the last tensor")
    return entries


def read_safetensors(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    """name -> (values, .shaw dtype name) of a safetensors file; bfloat16 values come as float32
    (exact), as the PyTorch reader gives them (imgcodec.weights.tensors)."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(8)
        if len(head) < 8:
            raise _fail(path, "shorter than its 8-byte header length")
        length = int.from_bytes(head, "little")
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise _fail(path, f"a header of {length} bytes in a file of {size}")
        try:
            header = json.loads(file.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _fail(path, f"its header is not JSON: {str(exc)[:60]}") from None
    entries = _entries(path, header, size - 8 - length)
    buffer = (np.memmap(path, dtype=np.uint8, mode="r", offset=8 + length) if size > 8 + length
              else np.empty(0, np.uint8))
    tensors = {}
    for name, dtype, shape, begin, end in entries:
        raw = np.asarray(buffer[begin:end])
        if dtype == "BF16":
            bits = raw.view("<u2").astype(np.uint32) << np.uint32(16)
            tensors[name] = (bits.view(np.float32).reshape(shape), "bfloat16")
        elif dtype == "BOOL":
            tensors[name] = ((raw != 0).reshape(shape), DTYPES[dtype])
        else:
            tensors[name] = (raw.view(DTYPES[dtype]).reshape(shape).copy(), DTYPES[dtype])
    del buffer
    return tensors


def to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 values -> uint16 bfloat16 patterns, rounded to nearest, ties to even (as PyTorch
    converts); NaNs stay NaNs."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    return np.where(nan, ((bits >> 16) | 0x40).astype(np.uint16), rounded)


def write_safetensors(arrays: dict[str, tuple[np.ndarray, str]]) -> bytes:
    """The tensors (values, .shaw dtype name) as a safetensors file, in the given order; the
    header padded with spaces to a multiple of 8 bytes so that the buffer is aligned."""
    header: dict[str, dict[str, object]] = {}
    parts: list[bytes] = []
    offset = 0
    for name, (array, dtype) in arrays.items():
        if dtype not in NAMES:
            raise ShaecError(f"tensor {name!r}: dtype {dtype} has no safetensors equivalent")
        if dtype == "bfloat16":
            data = to_bfloat16_bits(array).astype("<u2").tobytes()
        else:
            data = np.ascontiguousarray(array, dtype=dtype).tobytes()
        header[name] = {"dtype": NAMES[dtype], "shape": list(np.shape(array)),
                        "data_offsets": [offset, offset + len(data)]}
        parts.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(parts)
