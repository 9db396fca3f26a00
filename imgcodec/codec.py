"""The library API: image array <-> .shae bytes, and the codec of shae-v8's layout.

    data = compress(rgb, quality=4)        # H,W,3 or H,W,4 uint8 -> bytes
    image = decompress(data)               # -> H,W,3 (or H,W,4 with alpha) uint8

Pipeline of shae-v8 (CompressAI's compress/decompress contract, with our frozen integer prior):
pad to a multiple of 8 -> analysis transform (ONNX) -> per-level gain -> nearest learned center
-> range coding against the context tables -> container; and back. Alpha is stored losslessly
in its own segment. The container and its checks are imgcodec.codec_base's; shae-v9 models
decode through imgcodec.codec_v9.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterator

import numpy as np

from .bitstream import SEGMENT_LEVEL_STEP, ShaeFile
from .codec_base import (DEFAULT_MAX_DECODE_PIXELS, ROUNDINGS, ContainerCodec, DecodedRows, EncodeResult,
                         Progress)
from .config import DOWNSCALE, ModelConfig
from .coder import decode_symbols, encode_symbols
from .errors import FormatError, ModelNotFoundError
from .imageio import Metadata
from . import bitstream
from .rounding import rd_symbols
from .runtime import TransformRuntime
from .zoo import LoadedModel, ModelInfo, find_model, find_model_by_id, list_models

__all__ = ["Codec", "DEFAULT_MAX_DECODE_PIXELS", "DecodedRows", "EncodeResult", "ROUNDINGS", "compress",
           "decompress", "decompress_rows", "decompress_with_metadata", "get_codec", "parse"]


class Codec(ContainerCodec):
    """A model of shae-v8's layout (shae-v7, shae-v8), ready to encode and decode (ONNX
    sessions created lazily)."""

    def __init__(self, info: ModelInfo, threads: int | None = None) -> None:
        super().__init__(info)
        self.model = LoadedModel(info)
        # Tiles overlap by the transforms' reach, so that tiled coding equals whole-image coding.
        margin = ModelConfig.from_dict(info.meta["config"]).receptive_radius_latents()
        encoder = None if info.decode_only else self.model.encoder_path
        self.runtime = TransformRuntime(encoder, self.model.decoder_path, threads, margin_latents=margin)

    @property
    def rd_tau(self) -> np.ndarray:
        """The rate-distortion rounding weight of each level (model.json; zeros: nearest rounding)."""
        return self.model.rd_tau

    def latent_shape(self, width: int, height: int) -> tuple[int, int, int]:
        return (self.model.latent_channels, -(-height // DOWNSCALE), -(-width // DOWNSCALE))

    def latent_of(self, rgb: np.ndarray, level: int,
                  progress: Progress | None = None) -> np.ndarray:
        """H,W,3 uint8 -> the gained latent C,h,w float32 that the centers quantize."""
        height, width = rgb.shape[:2]
        _, h, w = self.latent_shape(width, height)
        x = np.pad(rgb, ((0, h * DOWNSCALE - height), (0, w * DOWNSCALE - width), (0, 0)), mode="edge")
        x = np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32) / 255.0  # 3,H,W
        latent = self.runtime.analysis(x, level, progress)  # C,h,w
        latent *= self.model.gains[level][:, None, None]
        return latent

    def symbols_of(self, rgb: np.ndarray, level: int, rounding: str = "rd",
                   progress: Progress | None = None) -> np.ndarray:
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

    def _payload(self, rgb: np.ndarray, level: int, rounding: str,
                 progress: Progress | None) -> tuple[bytes, float]:
        symbols = self.symbols_of(rgb, level, rounding, progress)
        return self._symbols_payload(symbols, level)

    def _symbols_payload(self, symbols: np.ndarray, level: int) -> tuple[bytes, float]:
        return encode_symbols(symbols, self.model.prior, level), self.model.prior.cross_entropy_bits(symbols, level)

    def encode_to_size(self, image: np.ndarray, max_bytes: int, rounding: str = "rd",
                       metadata: Metadata | None = None) -> EncodeResult:
        """The best file that fits in max_bytes; the smallest level when none fits, which the
        caller can tell from len(result.data) > max_bytes.

        First a bisection over the levels (file sizes grow with the level) finds the highest
        level L that fits. The levels are ~20-40 % apart in rate, so with "rd" rounding the search
        goes on inside the levels, where the rate-distortion tau (imgcodec.rounding) changes a
        file's size in fine steps: a larger tau makes level L+1's file smaller, a smaller one
        (down to nearest rounding) makes level L's larger. A bisection over log tau finds, in
        each, the largest file that fits; of these and level L as tuned, the one that decodes
        with the highest PSNR is kept (all are decoded to check), so the rate control never
        returns a worse picture than the levels alone. Below the lowest level's size, that level
        with more rounding is the only way down."""
        self._check_image(image)
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
        rgb = np.ascontiguousarray(image[..., :3])
        latents: dict[int, np.ndarray] = {}  # level -> gained latent: each level's analysis runs once
        symbols_of: dict[int, np.ndarray] = {}

        def latent(level: int) -> np.ndarray:
            if level not in latents:
                latents[level] = self.latent_of(rgb, level)
            return latents[level]

        def file_with_tau(level: int, tau: float) -> tuple[EncodeResult, np.ndarray]:
            symbols = self.symbols_with_tau(latent(level), level, tau)
            return self._file_of(image, *self._symbols_payload(symbols, level), level, metadata), symbols

        def at_level(level: int) -> EncodeResult:
            result, symbols_of[level] = file_with_tau(level, float(self.model.rd_tau[level]) if rounding == "rd" else 0.0)
            return result

        best = self._highest_fitting(at_level, max_bytes)
        if rounding != "rd":
            return best if best is not None else self.encode(image, 1, rounding, metadata)
        if best is None:  # even the lowest level is too large: round it harder, if that fits
            start = max(float(self.model.rd_tau[0]), self.TAU_FLOOR)
            squeezed = self._fit_inside_level(lambda tau: file_with_tau(0, tau), max_bytes, start,
                                              start * self.TAU_SPAN)
            return squeezed[0] if squeezed is not None else self.encode(image, 1, rounding, metadata)
        level = best.quality - 1
        candidates = [(best, symbols_of[level], level)]
        tuned = float(self.model.rd_tau[level])
        if tuned > 0:  # level L with less rounding: larger, better
            below = self._fit_inside_level(lambda tau: file_with_tau(level, tau), max_bytes,
                                           tuned * self.TAU_LOWEST, tuned)
            if below is not None:
                candidates.append((*below, level))
        if level + 1 < len(self.qualities):  # level L+1 with more rounding: smaller, worse
            start = max(float(self.model.rd_tau[level + 1]), self.TAU_FLOOR)
            above = self._fit_inside_level(lambda tau: file_with_tau(level + 1, tau), max_bytes, start,
                                           start * self.TAU_SPAN)
            if above is not None:
                candidates.append((*above, level + 1))
        if len(candidates) == 1:
            return best
        return min(candidates, key=lambda c: self._mse(rgb, c[1], c[2]))[0]

    #: The rate control's tau searches (see encode_to_size): level L+1 from its tuned tau (or
    #: TAU_FLOOR where it is 0) up to TAU_SPAN times that; level L from TAU_LOWEST times its
    #: tuned tau (nearly nearest rounding) up to the tuned one; each in TAU_STEPS bisection steps.
    TAU_FLOOR = 1e-5
    TAU_SPAN = 1e4
    TAU_LOWEST = 1e-3
    TAU_STEPS = 10

    def _fit_inside_level(self, file_with_tau: Callable[[float], tuple[EncodeResult, np.ndarray]], max_bytes: int,
                          tau_low: float, tau_high: float) -> tuple[EncodeResult, np.ndarray] | None:
        """The largest file of one level that fits, by bisection over log tau in [tau_low,
        tau_high] (files shrink as tau grows); None when even tau_high does not fit."""
        log_low, log_high = np.log(tau_low), np.log(tau_high)
        found = file_with_tau(tau_high)
        if len(found[0].data) > max_bytes:
            return None
        lowest = file_with_tau(tau_low)
        if len(lowest[0].data) <= max_bytes:
            return lowest
        for _ in range(self.TAU_STEPS):
            mid = (log_low + log_high) / 2
            trial = file_with_tau(float(np.exp(mid)))
            if len(trial[0].data) <= max_bytes:
                found, log_high = trial, mid
            else:
                log_low = mid
        return found

    def _mse(self, rgb: np.ndarray, symbols: np.ndarray, level: int) -> float:
        decoded = self.pixels_of(symbols, level, rgb.shape[1], rgb.shape[0])
        return float(np.mean((decoded.astype(np.float64) - rgb) ** 2))

    def decode_symbols(self, shae: ShaeFile, dtype: type = np.int32) -> np.ndarray:
        payload = self._latent_segment(shae)
        shape = self.latent_shape(shae.width, shae.height)
        return decode_symbols(payload, shape, self.model.prior, shae.level - 1, dtype)

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

    def _bands(self, shae: ShaeFile) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
        if shae.segment(SEGMENT_LEVEL_STEP) is not None:
            raise FormatError(f"the file asks for a level between two, which model {self.info.name} cannot decode")
        symbols = self.decode_symbols(shae, np.uint8)
        _, h, w = symbols.shape
        return self.runtime.band_count(h, w), self._pixel_bands(symbols, shae.level - 1, shae.width, shae.height)


def codec_of(info: ModelInfo, threads: int | None = None) -> ContainerCodec:
    """The codec of an installed model, by its architecture (threads: ONNX Runtime's; None: its default)."""
    if info.architecture == "shae-v9":
        from .codec_v9 import ShaeV9Codec

        return ShaeV9Codec(info, threads)
    return Codec(info, threads)


@lru_cache(maxsize=8)
def _codec_for(model_id: str, threads: int | None = None) -> ContainerCodec:
    """Codecs are immutable after loading; caching saves re-reading weights in batch work."""
    for info in list_models():
        if info.model_id == model_id:
            return codec_of(info, threads)
    raise ModelNotFoundError(f"model {model_id} is not installed")


def get_codec(model: str | None = None, threads: int | None = None) -> ContainerCodec:
    """The codec for an installed model (name or id), the default one for None; threads: ONNX
    Runtime's (None: one per core)."""
    return _codec_for(find_model(model).model_id, threads)


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
    return _codec_for(info.model_id).decode(shae, max_pixels), ContainerCodec.metadata_of(shae)


def decompress_rows(data: bytes, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS,
                    threads: int | None = None) -> tuple[DecodedRows, Metadata]:
    """decompress_with_metadata, with the pixels still to come band by band (Codec.decode_rows);
    threads as in get_codec."""
    shae = bitstream.unpack(data)
    info = find_model_by_id(shae.model_id)
    return _codec_for(info.model_id, threads).decode_rows(shae, max_pixels), ContainerCodec.metadata_of(shae)


def decompress(data: bytes, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> np.ndarray:
    """.shae bytes -> H,W,3 (or H,W,4) uint8; files declaring more than max_pixels are refused
    (0: no limit)."""
    shae = bitstream.unpack(data)
    info = find_model_by_id(shae.model_id)
    return _codec_for(info.model_id).decode(shae, max_pixels)
