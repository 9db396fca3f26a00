"""shae-v8r: a shae-v8-layout model plus a residual stage (imgcodec.detail_stage).

The base model's files (transforms, prior) are used as they are; the model adds `detail.npz`.
At the levels where the stage is on, the encoder decodes the base model's image as a decoder
will, and codes what it misses in a `detail` segment; the decoder adds the stage's pixels to each
band of the base image before rounding. At the other levels a file is the base model's, under
this model's id.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .bitstream import SEGMENT_DETAIL, Segment, ShaeFile
from .codec import Codec
from .codec_base import EncodeResult, Progress
from .config import DOWNSCALE
from .detail_stage import BLOCK, DetailStage, block_activity
from .errors import FormatError, ModelNotFoundError
from .imageio import Metadata
from .zoo import ModelInfo, verify_files

DETAIL_FILE = "detail.npz"


class DetailCodec(Codec):
    """A model of architecture "shae-v8r": `base` (shae-v8's layout) and its residual stage."""

    HAS_DETAIL_STAGE = True

    def __init__(self, info: ModelInfo, base: ModelInfo, threads: int | None = None) -> None:
        if base.architecture != "shae-v8":
            raise ModelNotFoundError(f"model '{info.name}': its base {base.name} is not of shae-v8's layout")
        super().__init__(base, threads)  # the base's transforms, prior and rounding
        self.info = info  # files name this model
        verify_files(info, [DETAIL_FILE])
        self.stage = DetailStage.load(info.folder / DETAIL_FILE)
        if len(self.stage.steps) != len(base.qualities):
            raise ModelNotFoundError(f"model '{info.name}': its stage has {len(self.stage.steps)} levels, "
                                     f"its base {len(base.qualities)}")
        self.zero_symbol = int(np.abs(self.model.centers).argmin())

    def _activity(self, symbols: np.ndarray, width: int, height: int) -> np.ndarray:
        """hb,wb activity contexts of the base model's symbols (imgcodec.detail_stage)."""
        return block_activity(symbols, self.zero_symbol, -(-height // BLOCK), -(-width // BLOCK), BLOCK // DOWNSCALE)

    def _stage(self, rgb: np.ndarray, symbols: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stage's symbols hb,wb,D for the base symbols of `rgb`, their activity contexts, and
        the image a decoder draws (H,W,3 uint8)."""
        height, width = rgb.shape[:2]
        first = self.pixels_of(symbols, level, width, height)  # what a decoder draws first, H,W,3 uint8
        residual = (rgb.astype(np.float32) - first) / 255.0
        residual = np.pad(residual, ((0, -height % BLOCK), (0, -width % BLOCK), (0, 0)))
        detail = self.stage.symbols(residual, level)
        added = 255.0 * self.stage.pixels(detail, level)[:height, :width]
        return detail, self._activity(symbols, width, height), np.clip(np.rint(first + added), 0, 255).astype(np.uint8)

    def _segments(self, rgb: np.ndarray, level: int, rounding: str,
                  progress: Progress | None) -> tuple[bytes, float, tuple[Segment, ...]]:
        return self._with_stage(rgb, self.symbols_of(rgb, level, rounding, progress), level)

    def _with_stage(self, rgb: np.ndarray, symbols: np.ndarray, level: int) -> tuple[bytes, float, tuple[Segment, ...]]:
        """The latent payload of these base symbols, the file's estimated bits, and the detail
        segment where the level has the stage."""
        payload, estimate = self._symbols_payload(symbols, level)
        if not self.stage.active(level):
            return payload, estimate, ()
        detail, activity, _ = self._stage(rgb, symbols, level)
        return (payload, estimate + self.stage.bits(detail, activity, level),
                (Segment(SEGMENT_DETAIL, self.stage.encode(detail, activity, level)),))

    def _file_of_symbols(self, image: np.ndarray, rgb: np.ndarray, symbols: np.ndarray, level: int,
                         metadata: Metadata | None) -> EncodeResult:
        payload, estimate, extra = self._with_stage(rgb, symbols, level)
        return self._file_of(image, payload, estimate, level, metadata, extra)

    def _mse(self, rgb: np.ndarray, symbols: np.ndarray, level: int) -> float:
        if not self.stage.active(level):
            return super()._mse(rgb, symbols, level)
        return float(np.mean((self._stage(rgb, symbols, level)[2].astype(np.float64) - rgb) ** 2))

    def detail_symbols(self, shae: ShaeFile, symbols: np.ndarray | None = None) -> np.ndarray | None:
        """The stage's symbols hb,wb,D of a parsed file (None at a level without the stage);
        `symbols`: the base latent's, if already decoded. FormatError when the detail segment is
        missing, out of place or damaged."""
        level = shae.level - 1
        segment = shae.segment(SEGMENT_DETAIL)
        if not self.stage.active(level):
            if segment is not None:
                raise FormatError(f"quality {shae.level} of model {self.info.name} has no detail segment; "
                                  "the file is corrupted")
            return None
        if segment is None:
            raise FormatError(f"the file has no detail segment, which quality {shae.level} of model "
                              f"{self.info.name} needs; the file is corrupted")
        if symbols is None:
            symbols = self.decode_symbols(shae, np.uint8)
        return self.stage.decode(segment.payload, self._activity(symbols, shae.width, shae.height), level)

    def _symbol_bands(self, shae: ShaeFile, symbols: np.ndarray) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
        count, base_bands = super()._symbol_bands(shae, symbols)
        detail = self.detail_symbols(shae, symbols)
        if detail is None:
            return count, base_bands
        level = shae.level - 1

        def bands() -> Iterator[tuple[int, np.ndarray]]:
            for top, band in base_bands:
                rows = band.shape[0]
                first_block, end_block = top // BLOCK, -(-(top + rows) // BLOCK)
                added = self.stage.pixels(detail[first_block:end_block], level)  # rows*BLOCK, wb*BLOCK, 3
                offset = top - first_block * BLOCK
                added = added[offset:offset + rows, :shae.width]
                yield top, np.clip(np.rint(band + 255.0 * added), 0, 255).astype(np.uint8)

        return count, bands()
