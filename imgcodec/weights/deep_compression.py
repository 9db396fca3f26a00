"""Deep Compression's storage (Han, Mao, Dally, ICLR 2016) as a benchmark baseline, in real bytes.

The paper's pipeline after pruning (the caller prunes by magnitude and retrains with the mask):
weight sharing by k-means with linear initialisation (8-bit indices for convolutions, 5-bit for
fully connected layers), the kept weights stored sparsely as relative indices (the gap to the
previous kept weight, 8 bits for convolutions and 5 for fully connected layers; a gap too long
for its bits gets a filler entry of value 0), and both the cluster indices and the gaps
Huffman-coded per layer. The paper reports the size this layout would take; here it is a file
that `unpack` reads back. The paper's centroid fine-tuning is not done.

Layout: magic "DCMP", record count, then per tensor: name, shape, kind (0 raw float32, 1 coded);
a coded tensor has its codebook (float32, the last entry the fillers' 0), Huffman code lengths
for the gaps and the clusters (one byte per symbol), the entry count and the two bit streams.
"""
from __future__ import annotations

import heapq
import struct

import numpy as np

MAGIC = b"DCMP"


def kmeans_1d(values: np.ndarray, clusters: int, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars from centers spread linearly over [min, max] (the paper's best
    initialisation): (centers float32 K, label of every value)."""
    values = values.astype(np.float64)
    centers = np.linspace(values.min(), values.max(), clusters)
    for _ in range(iterations):
        labels = np.abs(values[:, None] - centers[None, :]).argmin(axis=1)
        sums = np.bincount(labels, weights=values, minlength=clusters)
        counts = np.bincount(labels, minlength=clusters)
        moved = np.where(counts > 0, sums / np.maximum(counts, 1), centers)
        if np.allclose(moved, centers):
            break
        centers = moved
    labels = np.abs(values[:, None] - centers[None, :]).argmin(axis=1)
    return centers.astype(np.float32), labels


def huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Code length of every symbol (0 for unused ones) of a Huffman code for these counts."""
    used = [(int(c), i) for i, c in enumerate(counts) if c > 0]
    lengths = np.zeros(len(counts), dtype=np.int64)
    if len(used) == 1:
        lengths[used[0][1]] = 1
        return lengths
    heap = [(c, i, [i]) for c, i in used]  # (count, tie-break, symbols below this node)
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, t1, s1 = heapq.heappop(heap)
        c2, t2, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (c1 + c2, min(t1, t2), s1 + s2))
    return lengths


def _canonical(lengths: np.ndarray) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length) of the canonical Huffman code with these lengths."""
    order = sorted((int(length), symbol) for symbol, length in enumerate(lengths) if length > 0)
    codes, code, previous = {}, 0, 0
    for length, symbol in order:
        code <<= length - previous
        codes[symbol] = (code, length)
        code += 1
        previous = length
    return codes


def huffman_encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    codes = _canonical(lengths)
    bits = "".join(format(code, f"0{length}b") for code, length in (codes[int(s)] for s in symbols))
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def huffman_decode(data: bytes, count: int, lengths: np.ndarray) -> np.ndarray:
    decode = {(length, code): symbol for symbol, (code, length) in _canonical(lengths).items()}
    out = np.empty(count, dtype=np.int64)
    bits = "".join(format(byte, "08b") for byte in data)
    position = 0
    for k in range(count):
        code = length = 0
        while (length, code) not in decode:
            if position >= len(bits) or length > 64:
                raise ValueError("the Huffman stream ends early")
            code = (code << 1) | (bits[position] == "1")
            length += 1
            position += 1
        out[k] = decode[length, code]
    return out


def _sparse_entries(weight: np.ndarray, labels: np.ndarray, index_bits: int, filler: int) -> tuple[np.ndarray, np.ndarray]:
    """(gaps - 1, cluster indices) of the kept weights in flattened order, with filler entries
    where a gap exceeds 2^index_bits."""
    positions = np.flatnonzero(weight.ravel())
    longest = 1 << index_bits
    gaps, clusters, previous = [], [], -1
    for position, label in zip(positions.tolist(), labels.tolist()):
        gap = position - previous
        while gap > longest:
            gaps.append(longest - 1)
            clusters.append(filler)
            gap -= longest
        gaps.append(gap - 1)
        clusters.append(label)
        previous = position
    return np.array(gaps, dtype=np.int64), np.array(clusters, dtype=np.int64)


def pack(state: dict[str, np.ndarray], coded: dict[str, tuple[int, int]]) -> bytes:
    """A file of the (already pruned) tensors: those named in `coded`, as name -> (cluster bits,
    index bits), go through weight sharing and Huffman coding; the rest stay float32."""
    parts = [MAGIC, struct.pack("<I", len(state))]
    for name, array in state.items():
        array = np.asarray(array, dtype=np.float32)
        encoded = name.encode("utf-8")
        parts.append(struct.pack("<H", len(encoded)) + encoded + struct.pack("<B", array.ndim)
                     + struct.pack(f"<{array.ndim}I", *array.shape))
        if name not in coded:
            parts.append(b"\x00" + array.tobytes())
            continue
        cluster_bits, index_bits = coded[name]
        kept = array.ravel()[array.ravel() != 0]
        clusters = min(1 << cluster_bits, max(1, len(kept)))
        centers, labels = kmeans_1d(kept, clusters) if len(kept) else (np.zeros(1, np.float32), np.zeros(0, int))
        codebook = np.append(centers, np.float32(0))  # the last entry: fillers
        gaps, cluster_ids = _sparse_entries(array, labels, index_bits, len(centers))
        gap_lengths = huffman_lengths(np.bincount(gaps, minlength=1 << index_bits))
        cluster_lengths = huffman_lengths(np.bincount(cluster_ids, minlength=len(codebook)))
        gap_stream, cluster_stream = huffman_encode(gaps, gap_lengths), huffman_encode(cluster_ids, cluster_lengths)
        parts += [b"\x01", struct.pack("<BBH", cluster_bits, index_bits, len(codebook)), codebook.tobytes(),
                  gap_lengths.astype(np.uint8).tobytes(), cluster_lengths.astype(np.uint8).tobytes(),
                  struct.pack("<III", len(gaps), len(gap_stream), len(cluster_stream)), gap_stream, cluster_stream]
    return b"".join(parts)


def unpack(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of pack: name -> float32 array (shared weights where coded)."""
    if data[:4] != MAGIC:
        raise ValueError("not a Deep Compression baseline file")
    view, offset = memoryview(data), 4

    def take(size: int) -> bytes:
        nonlocal offset
        chunk = bytes(view[offset:offset + size])
        offset += size
        return chunk

    out = {}
    (count,) = struct.unpack("<I", take(4))
    for _ in range(count):
        (name_length,) = struct.unpack("<H", take(2))
        name = take(name_length).decode("utf-8")
        (ndim,) = struct.unpack("<B", take(1))
        shape = struct.unpack(f"<{ndim}I", take(4 * ndim))
        size = int(np.prod(shape, dtype=np.int64))
        if take(1) == b"\x00":
            out[name] = np.frombuffer(take(4 * size), dtype=np.float32).reshape(shape).copy()
            continue
        _, index_bits, entries = struct.unpack("<BBH", take(4))
        codebook = np.frombuffer(take(4 * entries), dtype=np.float32)
        gap_lengths = np.frombuffer(take(1 << index_bits), dtype=np.uint8).astype(np.int64)
        cluster_lengths = np.frombuffer(take(entries), dtype=np.uint8).astype(np.int64)
        n, gap_size, cluster_size = struct.unpack("<III", take(12))
        gaps = huffman_decode(take(gap_size), n, gap_lengths) + 1
        cluster_ids = huffman_decode(take(cluster_size), n, cluster_lengths)
        flat = np.zeros(size, dtype=np.float32)
        positions = np.cumsum(gaps) - 1
        flat[positions] = codebook[cluster_ids]  # fillers write 0
        out[name] = flat.reshape(shape)
    return out
