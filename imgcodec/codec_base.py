"""What every architecture's codec shares: the container, quality levels, checks and decoding
order; the latent payload itself is the subclass's (imgcodec.codec.Codec for shae-v8's layout,
imgcodec.codec_v9.ShaeV9Codec for shae-v9).

The public methods take the user-facing quality (1-based); everything below them works on the
0-based level index, which :meth:`ContainerCodec.level_of` computes once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from . import bitstream
from .bitstream import SEGMENT_ALPHA, SEGMENT_EXIF, SEGMENT_ICC, SEGMENT_LATENT, SEGMENT_XMP, Segment, ShaeFile
from .errors import FormatError, ImageInputError
from .imageio import MAX_SIDE, Metadata, alpha_max_pixels, decode_alpha, encode_alpha
from .zoo import ModelInfo

#: Default limit on the pixels a file may declare before decoding starts, like Pillow's
#: Image.MAX_IMAGE_PIXELS: a decoder's memory and time grow with the declared size. Raise it with
#: decompress(data, max_pixels=...) or `shaec decode --max-pixels`; 0 means no limit.
DEFAULT_MAX_DECODE_PIXELS = 128 * 1024 * 1024

#: Encoder roundings of the latent: rate-distortion optimised, or nearest center.
ROUNDINGS = ("rd", "nearest")

#: progress(done, total): called as the tiles of one large image are done.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EncodeResult:
    data: bytes
    width: int
    height: int
    quality: int
    estimated_bits: float  # the context prior's cross-entropy of the symbols

    @property
    def bpp(self) -> float:
        """Real rate: every byte of the file, per pixel."""
        return 8 * len(self.data) / (self.width * self.height)

    @property
    def estimated_bpp(self) -> float:
        return self.estimated_bits / (self.width * self.height)


@dataclass(frozen=True)
class DecodedRows:
    """A decode in progress (Codec.decode_rows): the alpha plane (H,W uint8 or None), how many
    bands `rows` yields, and the bands themselves as (first row, rows x W x 3 uint8)."""

    width: int
    height: int
    alpha: np.ndarray | None
    count: int
    rows: Iterator[tuple[int, np.ndarray]]


class ContainerCodec:
    """One installed model, ready to encode and decode: the container and the checks around
    an architecture's latent payload (_payload / _bands)."""

    def __init__(self, info: ModelInfo) -> None:
        self.info = info

    # ------------------------------------------------------------------------------------------
    # What an architecture provides

    def _payload(self, rgb: np.ndarray, level: int, rounding: str,
                 progress: Progress | None) -> tuple[bytes, float]:
        """H,W,3 uint8 -> (latent payload, the model's estimate of its bits)."""
        raise NotImplementedError

    def _bands(self, shae: ShaeFile) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
        """The latent segment decoded (now, so that errors come before any output) and the
        pixels to come: (band count, bands of (first row, rows x W x 3 uint8))."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------
    @property
    def qualities(self) -> list[int]:
        return self.info.qualities

    @property
    def model_id_bytes(self) -> bytes:
        return bytes.fromhex(self.info.model_id)

    def level_of(self, quality: int | None) -> int:
        """User-facing quality (1 = smallest files; None: the model's default) -> level index."""
        quality = self.info.default_quality if quality is None else quality
        # Only integers: 2.0 == 2 would pass the membership test and then fail as an index.
        if (isinstance(quality, bool) or not isinstance(quality, (int, np.integer))
                or quality not in self.qualities):
            raise ValueError(f"quality must be one of {self.qualities[0]}..{self.qualities[-1]}, got {quality!r}")
        return int(quality) - 1

    def quality_of_percent(self, percent: float) -> int:
        """The 0-100 quality scale of cwebp, avifenc and cjxl -> this model's quality: 0 is the
        lowest level, 100 the highest, linear in between (rounded half up)."""
        if isinstance(percent, bool) or not isinstance(percent, (int, float, np.integer, np.floating)) \
                or not 0 <= percent <= 100:
            raise ValueError(f"percent quality must be a number in 0..100, got {percent!r}")
        return self.qualities[0] + int(np.floor(percent * (len(self.qualities) - 1) / 100 + 0.5))

    def encode(self, image: np.ndarray, quality: int | None = None, rounding: str = "rd",
               metadata: Metadata | None = None, progress: Progress | None = None) -> EncodeResult:
        """H,W,3 or H,W,4 uint8 -> a .shae file at this quality (1-based; None: the default).
        `metadata` (ICC, EXIF, XMP, greyscale) is stored in its own segments; without it an
        image whose three channels are equal is marked greyscale. progress(done, total) is
        called after each tile of the analysis transform of a large image."""
        level = self.level_of(quality)
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
        self._check_image(image)
        payload, estimate = self._payload(np.ascontiguousarray(image[..., :3]), level, rounding, progress)
        return self._file_of(image, payload, estimate, level, metadata)

    def _check_image(self, image: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
            raise ImageInputError("expected an H,W,3 or H,W,4 uint8 image")
        height, width = image.shape[:2]
        if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
            raise ImageInputError(f"image is {width}x{height}; sides must be 1..{MAX_SIDE} pixels")
        if self._has_alpha(image) and height * width > alpha_max_pixels():  # decode_alpha refuses larger planes
            raise ImageInputError(f"an image with alpha may have at most {alpha_max_pixels()} pixels "
                                  f"(Pillow's decompression-bomb limit for the alpha PNG); this one is "
                                  f"{width}x{height}")

    @staticmethod
    def _has_alpha(image: np.ndarray) -> bool:
        return image.shape[2] == 4 and bool(np.any(image[..., 3] != 255))

    def _file_of(self, image: np.ndarray, payload: bytes, estimate: float, level: int,
                 metadata: Metadata | None, extra: tuple[Segment, ...] = ()) -> EncodeResult:
        """The .shae file of a latent payload at this level (0-based), with the image's alpha and
        metadata, and any `extra` segments of the architecture."""
        height, width = image.shape[:2]
        segments = [Segment(SEGMENT_LATENT, payload), *extra]
        if self._has_alpha(image):
            segments.append(Segment(SEGMENT_ALPHA, encode_alpha(np.ascontiguousarray(image[..., 3]))))
        if metadata is None:
            rgb = image[..., :3]
            metadata = Metadata(gray=bool(np.array_equal(rgb[..., 0], rgb[..., 1])
                                          and np.array_equal(rgb[..., 1], rgb[..., 2])))
        for kind, data in ((SEGMENT_ICC, metadata.icc), (SEGMENT_EXIF, metadata.exif), (SEGMENT_XMP, metadata.xmp)):
            if data:
                segments.append(Segment(kind, data))
        shae = ShaeFile(self.model_id_bytes, level + 1, width, height, tuple(segments), gray=metadata.gray)
        return EncodeResult(bitstream.pack(shae), width, height, level + 1, estimate)

    def encode_to_size(self, image: np.ndarray, max_bytes: int, rounding: str = "rd",
                       metadata: Metadata | None = None) -> EncodeResult:
        """The highest level whose file fits in max_bytes; the smallest level when none fits,
        which the caller can tell from len(result.data) > max_bytes."""
        best = self._highest_fitting(lambda level: self.encode(image, level + 1, rounding, metadata), max_bytes)
        return best if best is not None else self.encode(image, 1, rounding, metadata)

    def _highest_fitting(self, attempt: Callable[[int], EncodeResult], max_bytes: int) -> EncodeResult | None:
        """Bisection over the levels (file sizes grow with the level, so about log2(levels)
        attempts): the file of the highest level (0-based) that fits, or None."""
        low, high = 0, len(self.qualities) - 1
        best = None
        while low <= high:
            mid = (low + high) // 2
            result = attempt(mid)
            if len(result.data) <= max_bytes:
                best, low = result, mid + 1
            else:
                high = mid - 1
        return best

    def _latent_segment(self, shae: ShaeFile) -> bytes:
        if not 1 <= shae.level <= len(self.qualities):
            raise FormatError(f"quality {shae.level} does not exist in model {self.info.name}")
        if shae.width > MAX_SIDE or shae.height > MAX_SIDE:
            raise FormatError(f"image size {shae.width}x{shae.height} exceeds the supported {MAX_SIDE} per side")
        latent = shae.segment(SEGMENT_LATENT)
        if latent is None:
            raise FormatError("file has no latent segment")
        return latent.payload

    def decode(self, shae: ShaeFile, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> np.ndarray:
        """Parsed file -> H,W,3 uint8, or H,W,4 when the file has an alpha segment. Files that
        declare more than max_pixels (0: no limit) are refused before any work; the alpha
        segment is checked (and decoded) before the latent, which costs more."""
        decoded = self.decode_rows(shae, max_pixels)
        rgb = np.concatenate([rows for _, rows in decoded.rows], axis=0)
        if decoded.alpha is not None:
            return np.dstack([rgb, decoded.alpha])
        return rgb if decoded.count > 1 else np.ascontiguousarray(rgb)

    def decode_rows(self, shae: ShaeFile, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> DecodedRows:
        """Like decode, but the RGB pixels come band by band (DecodedRows.rows), so that a
        writer can stream them to its output and memory holds one band, not the image. The
        checks, the alpha plane and the latent's symbols are done before this returns."""
        if max_pixels and shae.width * shae.height > max_pixels:
            raise FormatError(f"the file declares {shae.width}x{shae.height} = {shae.width * shae.height} pixels, "
                              f"above the decoding limit of {max_pixels}; raise it (--max-pixels) if you trust the file")
        alpha_segment = shae.segment(SEGMENT_ALPHA)
        alpha = None if alpha_segment is None else decode_alpha(alpha_segment.payload, shae.width, shae.height)
        count, bands = self._bands(shae)

        def rows() -> Iterator[tuple[int, np.ndarray]]:
            for top, band in bands:
                if shae.gray:  # the model draws three channels; a greyscale original gets one grey back
                    grey = np.rint(band.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
                    band = np.repeat(grey, 3, axis=2)
                yield top, band

        return DecodedRows(shae.width, shae.height, alpha, count, rows())

    @staticmethod
    def metadata_of(shae: ShaeFile) -> Metadata:
        """The ICC, EXIF and XMP segments and the greyscale flag of a parsed file."""
        def payload(kind: int) -> bytes | None:
            segment = shae.segment(kind)
            return None if segment is None else segment.payload

        return Metadata(icc=payload(SEGMENT_ICC), exif=payload(SEGMENT_EXIF), xmp=payload(SEGMENT_XMP), gray=shae.gray)

    def decode_bytes(self, data: bytes) -> np.ndarray:
        """A .shae file's bytes -> its image (see decode)."""
        return self.decode(bitstream.unpack(data))
