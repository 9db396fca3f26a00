"""One file's encode or decode, as the CLI runs it for each input, in this process or a worker.

Each function does the whole job for one file (read, check the destination, code, write
atomically) and returns the lines to print; a user-caused problem raises ShaecError. Keeping
them here, apart from click, lets `shaec encode -j N` hand them to worker processes.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

import numpy as np

from .errors import ShaecError

if TYPE_CHECKING:
    from .codec_base import Progress
    from .imageio import Metadata


@dataclass(frozen=True)
class EncodeOptions:
    quality: int | None = None
    max_bytes: int | None = None  # --size
    target_bpp: float | None = None  # --bpp
    model: str | None = None
    force: bool = False
    strip: bool = False
    rounding: str = "rd"
    verbose: bool = False
    quiet: bool = False
    threads: int | None = None  # ONNX Runtime's per process (None: one per core)


@dataclass(frozen=True)
class DecodeOptions:
    fmt: str | None = None
    force: bool = False
    max_pixels: int | None = None
    quiet: bool = False
    threads: int | None = None  # as EncodeOptions.threads


#: The largest .shae file read: a 16384 x 16384 image at 8 bits per pixel is 256 MiB. Reading
#: stops there, so a path that is a link to /dev/zero or a huge unrelated file costs nothing.
MAX_INPUT_BYTES = 512 * 1024 * 1024
READ_CHUNK = 1 << 20


def read_limited(source: str, limit: int | None = None) -> bytes:
    """The bytes of a file ('-': stdin), or ShaecError once more than `limit` (default
    MAX_INPUT_BYTES) arrive."""
    limit = MAX_INPUT_BYTES if limit is None else limit
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")
    chunks, total = [], 0
    try:
        # In pieces: read(limit + 1) would reserve the whole limit for every file, however small.
        while total <= limit:
            chunk = stream.read(min(READ_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        if source != "-":
            stream.close()
    if total > limit:
        raise ShaecError(f"input is larger than {limit // (1024 * 1024)} MiB, more than any .shae file can be")
    return b"".join(chunks)


def human_size(num_bytes: int) -> str:
    """Bytes in the units that --size reads (KB = 1000 bytes, MB = 10^6), so that a file made to
    fit `--size 40KB` never prints as more than 40.0 KB."""
    return f"{num_bytes / 1000:.1f} KB" if num_bytes < 999_950 else f"{num_bytes / 1e6:.2f} MB"


def check_destination(source: str, dest: str, force: bool) -> None:
    """Refuse to write over the input, or over an existing file without -f. An existing image
    with the .shae file's own name is probably the original it was encoded from: say so, and do
    not suggest -f."""
    if dest == "-":
        return
    if source != "-" and Path(dest).resolve() == Path(source).resolve():
        raise ShaecError(f"the output '{dest}' is the input; choose another name with -o")
    if Path(dest).exists() and not force:
        if source != "-" and Path(source).suffix.lower() == ".shae" and Path(dest).stem == Path(source).stem:
            raise ShaecError(f"'{dest}' exists and may be the original that '{source}' was encoded from; "
                             "choose another output name with -o")
        raise ShaecError(f"'{dest}' exists; use -f/--force to overwrite")


def _write(dest: str, data: bytes, force: bool) -> None:
    from .imageio import atomic_write

    if dest == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        atomic_write(dest, data, force=force)


def encode_file(source: str, dest: str, options: EncodeOptions, progress: Progress | None = None) -> list[str]:
    """Encode one image file to dest; the lines to print."""
    from .codec import get_codec
    from .imageio import load_image

    check_destination(source, dest, options.force)
    codec = get_codec(options.model, options.threads)
    image = load_image(sys.stdin.buffer.read() if source == "-" else source)
    pixels = image.rgb if image.alpha is None else np.dstack([image.rgb, image.alpha])
    metadata = image.metadata.without_profiles() if options.strip else image.metadata
    lines = []
    if options.max_bytes is not None or options.target_bpp is not None:
        budget = options.max_bytes if options.max_bytes is not None else int(
            options.target_bpp * pixels.shape[0] * pixels.shape[1] / 8)
        result = codec.encode_to_size(pixels, budget, options.rounding, metadata)
        if len(result.data) > budget and not options.quiet:
            lines.append(f"{source}: note: even the smallest level takes {len(result.data)} bytes, "
                         f"above the {budget} asked for")
    else:
        result = codec.encode(pixels, options.quality, options.rounding, metadata, progress)
    _write(dest, result.data, options.force)
    if options.verbose:
        lines += [f"{source}: note: {note}" for note in image.notes]
        alpha = ", alpha kept losslessly" if image.alpha is not None else ""
        lines.append(f"{source} -> {dest}: {result.width}x{result.height}, q{result.quality}, "
                     f"{len(result.data)} bytes, {result.bpp:.4f} bpp (model estimate {result.estimated_bpp:.4f}){alpha}")
    elif not options.quiet:
        lines.append(f"{source} -> {dest}  {human_size(len(result.data))}  {result.bpp:.2f} bpp  q{result.quality}")
    return lines


def decode_file(source: str, dest: str, options: DecodeOptions, progress: Progress | None = None) -> list[str]:
    """Decode one .shae file ('-': stdin) to dest; the lines to print. PNG (the default) is
    written band by band as the decoder produces it, so memory holds one band of tiles and not
    the image; other formats go through Pillow with the whole image."""
    from .codec import DEFAULT_MAX_DECODE_PIXELS, decompress_rows
    from .imageio import check_output_format, drops_alpha, encode_image_bytes

    check_destination(source, dest, options.force)
    out_format = options.fmt or ("png" if dest == "-" else (Path(dest).suffix or ".png"))
    pil_format = check_output_format(out_format)  # before the decode, not after it
    data_in = read_limited(source)
    limit = DEFAULT_MAX_DECODE_PIXELS if options.max_pixels is None else options.max_pixels
    decoded, metadata = decompress_rows(data_in, limit, options.threads)
    bands = _counted(decoded.rows, decoded.count, progress)
    if pil_format == "PNG":
        written = _write_png_stream(dest, decoded.width, decoded.height, bands, decoded.alpha, metadata, options.force)
    else:
        rgb = np.concatenate([rows for _, rows in bands], axis=0)
        data = encode_image_bytes(rgb, decoded.alpha, out_format, metadata)
        _write(dest, data, options.force)
        written = len(data)
    lines = []
    if decoded.alpha is not None and drops_alpha(out_format) and not options.quiet:
        lines.append(f"{source}: note: {out_format.lstrip('.').upper()} has no alpha channel; "
                     "the transparency was dropped (write PNG, WebP or TIFF to keep it)")
    if not options.quiet and dest != "-":
        lines.append(f"{source} -> {dest}  {decoded.width}x{decoded.height}  {human_size(written)}")
    return lines


def _counted(rows: Iterator[tuple[int, np.ndarray]], count: int,
             progress: Progress | None) -> Iterator[tuple[int, np.ndarray]]:
    for done, item in enumerate(rows, 1):
        yield item
        if progress is not None:
            progress(done, count)


def _write_png_stream(dest: str, width: int, height: int, bands: Iterator[tuple[int, np.ndarray]],
                      alpha: np.ndarray | None, metadata: Metadata, force: bool) -> int:
    """Write the decoded bands as a PNG to dest ('-': stdout); the bytes written. Greyscale
    originals come back as grey (L or LA), alpha as the fourth channel."""
    from .imageio import atomic_write
    from .png_stream import write_png

    def planes() -> Iterator[np.ndarray]:
        for top, rgb in bands:
            parts = [rgb[..., :1]] if metadata.gray else [rgb]
            if alpha is not None:
                parts.append(alpha[top:top + rgb.shape[0], :, None])
            yield np.ascontiguousarray(np.concatenate(parts, axis=2)) if len(parts) > 1 else parts[0]

    channels = (1 if metadata.gray else 3) + (alpha is not None)
    sizes = []

    def write(out: BinaryIO) -> None:
        counting = _CountingWriter(out)
        write_png(counting, width, height, channels, planes(), metadata)
        sizes.append(counting.count)

    if dest == "-":
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        atomic_write(dest, write, force=force)
    return sizes[0]


class _CountingWriter:
    """A binary stream that counts what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.count = out, 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return self.out.write(data)
