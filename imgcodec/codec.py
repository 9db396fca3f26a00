"""The library API: image array <-> .shae bytes.

    data = compress(rgb, quality=4)        # H,W,3 or H,W,4 uint8 -> bytes
    image = decompress(data)               # -> H,W,3 (or H,W,4 with alpha) uint8

Pipeline (CompressAI's compress/decompress contract, with our frozen integer prior):
pad to a multiple of 8 -> analysis transform (ONNX) -> per-level gain -> nearest learned center
-> range coding against the context tables -> container; and back. Alpha is stored losslessly
in its own segment.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np

from . import bitstream
from .bitstream import SEGMENT_ALPHA, SEGMENT_EXIF, SEGMENT_ICC, SEGMENT_LATENT, SEGMENT_XMP, Segment, ShaeFile
from .config import DOWNSCALE, ModelConfig
from .coder import decode_symbols, encode_symbols
from .errors import FormatError, ImageInputError, ModelNotFoundError
from .imageio import MAX_SIDE, Metadata, alpha_max_pixels, decode_alpha, encode_alpha
from .rounding import rd_symbols
from .runtime import TransformRuntime
from .zoo import LoadedModel, ModelInfo, find_model, find_model_by_id, list_models


#: Default limit on the pixels a file may declare before decoding starts, like Pillow's
#: Image.MAX_IMAGE_PIXELS: a decoder's memory and time grow with the declared size. Raise it with
#: decompress(data, max_pixels=...) or `shaec decode --max-pixels`; 0 means no limit.
DEFAULT_MAX_DECODE_PIXELS = 128 * 1024 * 1024

#: Encoder roundings of the latent (Codec.symbols_of): rate-distortion optimised, or nearest center.
ROUNDINGS = ("rd", "nearest")


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


class Codec:
    """One installed model, ready to encode and decode (ONNX sessions created lazily).

    The public methods take the user-facing quality (1-based); everything below them works on
    the 0-based level index, which :meth:`level_of` computes once.
    """

    def __init__(self, info: ModelInfo, threads: int | None = None) -> None:
        self.model = LoadedModel(info)
        # Tiles overlap by the transforms' reach, so that tiled coding equals whole-image coding.
        margin = ModelConfig.from_dict(info.meta["config"]).receptive_radius_latents()
        encoder = None if info.decode_only else self.model.encoder_path
        self.runtime = TransformRuntime(encoder, self.model.decoder_path, threads, margin_latents=margin)

    @property
    def qualities(self) -> list[int]:
        return self.model.info.qualities

    def level_of(self, quality: int | None) -> int:
        """User-facing quality (1 = smallest files; None: the model's default) -> level index."""
        quality = self.model.info.default_quality if quality is None else quality
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

    def latent_shape(self, width: int, height: int) -> tuple[int, int, int]:
        return (self.model.latent_channels, -(-height // DOWNSCALE), -(-width // DOWNSCALE))

    def latent_of(self, rgb: np.ndarray, level: int,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """H,W,3 uint8 -> the gained latent C,h,w float32 that the centers quantize."""
        height, width = rgb.shape[:2]
        _, h, w = self.latent_shape(width, height)
        x = np.pad(rgb, ((0, h * DOWNSCALE - height), (0, w * DOWNSCALE - width), (0, 0)), mode="edge")
        x = np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32) / 255.0  # 3,H,W
        latent = self.runtime.analysis(x, level, progress)  # C,h,w
        latent *= self.model.gains[level][:, None, None]
        return latent

    def symbols_of(self, rgb: np.ndarray, level: int, rounding: str = "rd",
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """H,W,3 uint8 -> symbols C,h,w int32 (indices of the sorted centers). rounding "rd":
        rate-distortion optimised with the model's tuned tau for this level (imgcodec.rounding;
        nearest where the model has none); "nearest": the nearest center."""
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
        latent = self.latent_of(rgb, level, progress)
        tau = float(self.model.rd_tau[level]) if rounding == "rd" else 0.0
        return self.symbols_with_tau(latent, level, tau)

    def symbols_with_tau(self, latent: np.ndarray, level: int, tau: float) -> np.ndarray:
        """Symbols of a gained latent (latent_of) with rate-distortion rounding at this tau."""
        model = self.model
        return rd_symbols(latent, model.centers, model.thresholds, model.prior, level,
                          model.inverse_gains[level].astype(np.float64) ** 2, tau)

    def encode(self, image: np.ndarray, quality: int | None = None, rounding: str = "rd",
               metadata: Metadata | None = None,
               progress: Callable[[int, int], None] | None = None) -> EncodeResult:
        """H,W,3 or H,W,4 uint8 -> a .shae file at this quality (1-based; None: the default).
        `metadata` (ICC, EXIF, XMP, greyscale) is stored in its own segments; without it an
        image whose three channels are equal is marked greyscale. progress(done, total) is
        called after each tile of the analysis transform of a large image."""
        level = self.level_of(quality)
        self._check_image(image)
        symbols = self.symbols_of(np.ascontiguousarray(image[..., :3]), level, rounding, progress)
        return self._file_of(image, symbols, level, metadata)

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

    def _file_of(self, image: np.ndarray, symbols: np.ndarray, level: int,
                 metadata: Metadata | None) -> EncodeResult:
        """The .shae file of the image's symbols at this level (0-based), with its alpha and metadata."""
        height, width = image.shape[:2]
        segments = [Segment(SEGMENT_LATENT, encode_symbols(symbols, self.model.prior, level))]
        if self._has_alpha(image):
            segments.append(Segment(SEGMENT_ALPHA, encode_alpha(np.ascontiguousarray(image[..., 3]))))
        if metadata is None:
            rgb = image[..., :3]
            metadata = Metadata(gray=bool(np.array_equal(rgb[..., 0], rgb[..., 1])
                                          and np.array_equal(rgb[..., 1], rgb[..., 2])))
        for kind, payload in ((SEGMENT_ICC, metadata.icc), (SEGMENT_EXIF, metadata.exif), (SEGMENT_XMP, metadata.xmp)):
            if payload:
                segments.append(Segment(kind, payload))
        shae = ShaeFile(self.model.model_id_bytes, level + 1, width, height, tuple(segments), gray=metadata.gray)
        estimate = self.model.prior.cross_entropy_bits(symbols, level)
        return EncodeResult(bitstream.pack(shae), width, height, level + 1, estimate)

    def encode_to_size(self, image: np.ndarray, max_bytes: int, rounding: str = "rd",
                       metadata: Metadata | None = None) -> EncodeResult:
        """The best file that fits in max_bytes; the smallest level when none fits, which the
        caller can tell from len(result.data) > max_bytes.

        First a bisection over the levels (file sizes grow with the level) finds the highest
        level L that fits. The levels are ~20-40 % apart in rate, so with "rd" rounding the search
        goes on inside the next level: a larger rate-distortion tau (imgcodec.rounding) makes
        level L+1's file smaller in fine steps, and a bisection over tau finds the largest file
        that fits. That file is kept only if its PSNR beats level L's (both are decoded to
        check), so the rate control never returns a worse picture than the levels alone."""
        self._check_image(image)
        rgb = np.ascontiguousarray(image[..., :3])
        low, high = 0, len(self.qualities) - 1  # level indices
        best: EncodeResult | None = None
        best_symbols: np.ndarray | None = None
        while low <= high:
            mid = (low + high) // 2
            symbols = self.symbols_of(rgb, mid, rounding)
            result = self._file_of(image, symbols, mid, metadata)
            if len(result.data) <= max_bytes:
                best, best_symbols, low = result, symbols, mid + 1
            else:
                high = mid - 1
        if best is None:
            return self.encode(image, 1, rounding, metadata)
        level = best.quality - 1
        if rounding != "rd" or level + 1 >= len(self.qualities):
            return best
        inside = self._fit_inside_level(image, level + 1, max_bytes, metadata)
        if inside is None:
            return best
        inside_result, inside_symbols = inside
        if self._mse(rgb, inside_symbols, level + 1) < self._mse(rgb, best_symbols, level):
            return inside_result
        return best

    #: The rate control's tau search (see encode_to_size): from this level's tuned tau (or
    #: TAU_FLOOR where it is 0) up to TAU_SPAN times that, in this many bisection steps.
    TAU_FLOOR = 1e-5
    TAU_SPAN = 1e4
    TAU_STEPS = 10

    def _fit_inside_level(self, image: np.ndarray, level: int, max_bytes: int,
                          metadata: Metadata | None) -> tuple[EncodeResult, np.ndarray] | None:
        """The largest file of this level (0-based) that fits, by bisection over log tau; None
        when even the largest tau does not fit."""
        latent = self.latent_of(np.ascontiguousarray(image[..., :3]), level)
        tau_low = max(float(self.model.rd_tau[level]), self.TAU_FLOOR)
        log_low, log_high = np.log(tau_low), np.log(tau_low * self.TAU_SPAN)

        def attempt(log_tau: float) -> tuple[EncodeResult, np.ndarray]:
            symbols = self.symbols_with_tau(latent, level, float(np.exp(log_tau)))
            return self._file_of(image, symbols, level, metadata), symbols

        found = attempt(log_high)
        if len(found[0].data) > max_bytes:
            return None
        for _ in range(self.TAU_STEPS):
            mid = (log_low + log_high) / 2
            trial = attempt(mid)
            if len(trial[0].data) <= max_bytes:
                found, log_high = trial, mid
            else:
                log_low = mid
        return found

    def _mse(self, rgb: np.ndarray, symbols: np.ndarray, level: int) -> float:
        decoded = self.pixels_of(symbols, level, rgb.shape[1], rgb.shape[0])
        return float(np.mean((decoded.astype(np.float64) - rgb) ** 2))

    def decode_symbols(self, shae: ShaeFile, dtype: type = np.int32) -> np.ndarray:
        if not 1 <= shae.level <= len(self.qualities):
            raise FormatError(f"quality {shae.level} does not exist in model {self.model.info.name}")
        if shae.width > MAX_SIDE or shae.height > MAX_SIDE:
            raise FormatError(f"image size {shae.width}x{shae.height} exceeds the supported {MAX_SIDE} per side")
        latent = shae.segment(SEGMENT_LATENT)
        if latent is None:
            raise FormatError("file has no latent segment")
        shape = self.latent_shape(shae.width, shae.height)
        return decode_symbols(latent.payload, shape, self.model.prior, shae.level - 1, dtype)

    def pixels_of(self, symbols: np.ndarray, level: int, width: int, height: int) -> np.ndarray:
        """Symbols C,h,w -> the decoded H,W,3 uint8 image (synthesis of the centers, cropped)."""
        bands = [rows for _, rows in self._pixel_bands(symbols, level, width, height)]
        return bands[0] if len(bands) == 1 else np.concatenate(bands, axis=0)

    def _pixel_bands(self, symbols: np.ndarray, level: int, width: int,
                     height: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first pixel row, rows x W x 3 uint8) of the decoded image, top to bottom: only one
        band of latent values and of pixels is held at a time."""
        scale = self.model.inverse_gains[level][:, None, None]

        def latent_rows(a0: int, a1: int) -> np.ndarray:
            latent = self.model.centers[symbols[:, a0:a1]]  # C,rows,w float32
            latent *= scale
            return latent

        _, h, w = symbols.shape
        for r0, band in self.runtime.synthesis_bands(latent_rows, h, w, level):
            top = r0 * DOWNSCALE
            band = band[:, :max(0, height - top), :width]  # 3,rows,W cropped to the image
            yield top, np.clip(np.rint(band * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)

    def decode(self, shae: ShaeFile, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> np.ndarray:
        """Parsed file -> H,W,3 uint8, or H,W,4 when the file has an alpha segment. Files that
        declare more than max_pixels (0: no limit) are refused before any work; the alpha
        segment is checked (and decoded) before the latent, which costs more."""
        decoded = self.decode_rows(shae, max_pixels)
        rgb = np.concatenate([rows for _, rows in decoded.rows], axis=0)
        if decoded.alpha is not None:
            return np.dstack([rgb, decoded.alpha])
        return rgb if decoded.count > 1 else np.ascontiguousarray(rgb)

    def decode_rows(self, shae: ShaeFile, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> "DecodedRows":
        """Like decode, but the RGB pixels come band by band (DecodedRows.rows), so that a
        writer can stream them to its output and memory holds one band, not the image. The
        checks, the alpha plane and the latent's symbols are done before this returns."""
        if max_pixels and shae.width * shae.height > max_pixels:
            raise FormatError(f"the file declares {shae.width}x{shae.height} = {shae.width * shae.height} pixels, "
                              f"above the decoding limit of {max_pixels}; raise it (--max-pixels) if you trust the file")
        alpha_segment = shae.segment(SEGMENT_ALPHA)
        alpha = None if alpha_segment is None else decode_alpha(alpha_segment.payload, shae.width, shae.height)
        symbols = self.decode_symbols(shae, np.uint8)
        level = shae.level - 1

        def rows() -> Iterator[tuple[int, np.ndarray]]:
            for top, band in self._pixel_bands(symbols, level, shae.width, shae.height):
                if shae.gray:  # the model draws three channels; a greyscale original gets one grey back
                    grey = np.rint(band.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
                    band = np.repeat(grey, 3, axis=2)
                yield top, band

        _, h, w = symbols.shape
        return DecodedRows(shae.width, shae.height, alpha, self.runtime.band_count(h, w), rows())

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


@lru_cache(maxsize=8)
def _codec_for(model_id: str) -> Codec:
    """Codecs are immutable after loading; caching saves re-reading weights in batch work."""
    for info in list_models():
        if info.model_id == model_id:
            return Codec(info)
    raise ModelNotFoundError(f"model {model_id} is not installed")


def get_codec(model: str | None = None) -> Codec:
    """The codec for an installed model (name or id), the default one for None."""
    return _codec_for(find_model(model).model_id)


def available_levels(model: str | None = None) -> list[int]:
    """Quality numbers of a model (1 = smallest files)."""
    return find_model(model).qualities


def compress(image: np.ndarray, quality: int | None = None, model: str | None = None,
             rounding: str = "rd", metadata: Metadata | None = None) -> bytes:
    return get_codec(model).encode(image, quality, rounding, metadata).data


def parse(data: bytes) -> ShaeFile:
    return bitstream.unpack(data)


def decompress_with_metadata(data: bytes, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> tuple[np.ndarray, Metadata]:
    """decompress, and what the file carries besides pixels (ICC, EXIF, XMP, greyscale)."""
    shae = bitstream.unpack(data)
    info = find_model_by_id(shae.model_id)
    return _codec_for(info.model_id).decode(shae, max_pixels), Codec.metadata_of(shae)


def decompress_rows(data: bytes, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> tuple[DecodedRows, Metadata]:
    """decompress_with_metadata, with the pixels still to come band by band (Codec.decode_rows)."""
    shae = bitstream.unpack(data)
    info = find_model_by_id(shae.model_id)
    return _codec_for(info.model_id).decode_rows(shae, max_pixels), Codec.metadata_of(shae)


def decompress(data: bytes, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> np.ndarray:
    """.shae bytes -> H,W,3 (or H,W,4) uint8; files declaring more than max_pixels are refused
    (0: no limit)."""
    shae = bitstream.unpack(data)
    info = find_model_by_id(shae.model_id)
    return _codec_for(info.model_id).decode(shae, max_pixels)
