"""The codec of shae-v9 models (imgcodec.train.shae_v9.ShaeV9, exported by
imgcodec.train.export.export_shae_v9): ONNX transforms and the integer entropy model.

Encode: pad to a multiple of 64 -> analysis (ONNX) -> gains of the level -> nearest y centers ->
(with a residual stage: synthesis of those, the projection of the image minus it, its gains and
nearest centers) -> hyper-analysis (ONNX) -> nearest z centers -> the passes of
imgcodec.hyperprior. Decode: the passes -> y's centers times the inverse gains -> synthesis (ONNX) -> crop. The transforms run in
overlapping tiles of TILE_LATENTS (imgcodec.runtime), so memory stays bounded for large images
and a decode streams band by band. With rate-distortion rounding (a tau per level in model.json,
scripts/tune_rounding.py) the passes may code, instead of a nearest y center, the one across the
value when its table prices it cheaper (encode_symbols; imgcodec.rounding.rd_choice); z stays
nearest.

Levels interpolate: the entropy model does not depend on the level (the side latent carries
what the tables need), so any gain vector between two levels' gains codes with the same tables (Cui
et al., CVPR 2021, who interpolate gains geometrically). A file at a position between level l and l + 1 stores the
step t (u16, t / 65536 of the way) in a level-step segment; encode_at writes one, and
encode_to_size uses them to land close under a target size.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .bitstream import SEGMENT_LEVEL_STEP, Segment, ShaeFile
from .codec_base import ROUNDINGS, ContainerCodec, EncodeResult, Progress
from .errors import FormatError
from .imageio import Metadata
from .hyperprior import HyperpriorTables
from .rounding import rd_choice
from .runtime import OnnxGraph, TransformRuntime
from .zoo import ModelInfo, graph_path, rd_channel_weights_of, rd_tau_of, verify_files

MULTIPLE = 64  # image sides are padded to this (the side latent is at 1/64)
DOWNSCALE = 16  # the latent's
#: A latent up to 88 x 88 (1408 pixels a side: a 1-megapixel photo) is transformed whole, for
#: speed; larger ones in tiles of 48 latents (768 pixels) with a margin of 4, more than the
#: transforms' reach (four 5x5 stride-2 layers: about 2.4 latents). A tile's activations are
#: most of the peak memory: 80-latent tiles were a little faster on large images and needed
#: about twice the memory.
SINGLE_TILE_LATENTS = 88
TILE_LATENTS = 48
MARGIN_LATENTS = 4
STEPS = 1 << 16  # a level-step segment's unit: 1/65536 of the way to the next level


class ShaeV9Codec(ContainerCodec):
    """A shae-v9 model, ready to encode and decode."""

    def __init__(self, info: ModelInfo, threads: int | None = None) -> None:
        super().__init__(info)
        verify_files(info, info.meta["files"])
        self.tables = HyperpriorTables.load(info.folder / "hyperprior.npz")
        with np.load(info.folder / "levels.npz") as levels:
            self.y_centers = levels["y_centers"].astype(np.float32)
            self.z_centers = levels["z_centers"].astype(np.float32)
            self.gains = levels["gains"].astype(np.float32)  # levels,M
            self.inverse_gains = levels["inverse_gains"].astype(np.float32)
        # a residual stage (ShaeV9Config.detail_channels) is the latent's last channels
        self.detail_channels = int(info.meta.get("config", {}).get("detail_channels", 0))
        self.transform_channels = self.gains.shape[1] - self.detail_channels
        if not 0 <= self.detail_channels < self.gains.shape[1]:
            raise FormatError(f"model '{info.name}': detail_channels does not fit its {self.gains.shape[1]} gains")
        self._detail_analysis: OnnxGraph | None = None
        self.y_thresholds = (self.y_centers[1:] + self.y_centers[:-1]) / 2
        self.z_thresholds = (self.z_centers[1:] + self.z_centers[:-1]) / 2
        encoder = None if info.decode_only else graph_path(info, "encoder")
        self.runtime = TransformRuntime(encoder, graph_path(info, "decoder"), threads, TILE_LATENTS,
                                        MARGIN_LATENTS, DOWNSCALE, SINGLE_TILE_LATENTS)
        self.threads = threads
        self._hyper_analysis: OnnxGraph | None = None  # on the whole latent, which is small
        self.rd_tau = rd_tau_of(info, len(self.gains))  # per level; zeros: nearest rounding
        #: what a unit change of each channel's decoder input costs the image, relative (M): the
        #: rounding weighs a change by it times the squared inverse gain; ones unless model.json
        #: gives "rd_rounding": {"channel_weights": [...]}
        self.channel_weights = rd_channel_weights_of(info, self.gains.shape[1])
        self._y_centers64 = self.y_centers.astype(np.float64)

    def _gains(self, gains: np.ndarray, level: int, step: int) -> np.ndarray:
        """A level's gain vector, or the geometric interpolation step / 65536 of the way to the next."""
        if step == 0:
            return gains[level]
        t = step / STEPS
        return np.exp((1 - t) * np.log(gains[level]) + t * np.log(gains[level + 1])).astype(np.float32)

    def analysis(self, rgb: np.ndarray) -> np.ndarray:
        """H,W,3 uint8 -> the latent before any gain, M,h,w float32 (the same for every level)."""
        self.info.check_encodes()
        height, width = rgb.shape[:2]
        padded = np.pad(rgb, ((0, -height % MULTIPLE), (0, -width % MULTIPLE), (0, 0)), mode="edge")
        return self.runtime.analysis(np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32) / 255.0)

    def symbols_of(self, rgb: np.ndarray, level: int, step: int = 0,
                   latent: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """H,W,3 uint8 -> (y symbols M,h,w, z symbols Cz,h/4,w/4), nearest centers, at a level
        (0-based) or `step` / 65536 of the way to the next; `latent`: the image's analysis, if
        already computed."""
        _, y_symbols, z_symbols = self.latents_of(rgb, level, step, latent)
        return y_symbols, z_symbols

    def latents_of(self, rgb: np.ndarray, level: int, step: int = 0,
                   latent: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """symbols_of, with the gained latent they round first: (y M,h,w float32, y symbols, z symbols)."""
        gains = self._gains(self.gains, level, step)
        t = self.transform_channels
        y = (self.analysis(rgb) if latent is None else latent) * gains[:t, None, None]  # T,h,w
        y_symbols = np.searchsorted(self.y_thresholds, y).astype(np.int32)
        if self.detail_channels:
            detail = self._detail(rgb, y_symbols, level, step) * gains[t:, None, None]  # D,h,w
            y = np.concatenate([y, detail])
            y_symbols = np.concatenate([y_symbols, np.searchsorted(self.y_thresholds, detail).astype(np.int32)])
        if self._hyper_analysis is None:
            self._hyper_analysis = OnnxGraph(graph_path(self.info, "hyper_encoder"), self.threads)
        z = self._hyper_analysis(np.ascontiguousarray(y, dtype=np.float32), 0)  # Cz,h/4,w/4
        return y, y_symbols, np.searchsorted(self.z_thresholds, z).astype(np.int32)

    def _tau(self, level: int, step: int) -> float:
        """The rate-distortion rounding weight of a level, or linearly between two levels'."""
        if step == 0:
            return float(self.rd_tau[level])
        t = step / STEPS
        return float((1 - t) * self.rd_tau[level] + t * self.rd_tau[level + 1])

    def encode_symbols(self, rgb: np.ndarray, level: int, step: int = 0, tau: float = 0.0,
                       latent: np.ndarray | None = None) -> tuple[bytes, float, np.ndarray]:
        """The latent payload of an image, its ideal bits and the y symbols it holds (M,h,w), with
        rate-distortion rounding at weight `tau` (0: nearest centers; imgcodec.rounding.rd_choice).

        A change of a symbol is weighed by the squared inverse gain of its channel (what the
        decoder multiplies the center by) times the channel's weight (channel_weights: what a
        change of its decoder input costs the image). The side latent z is the hyper-analysis of the
        nearest-rounded latent. With a residual stage (whose channels start a group, as in every
        layout trained), the first stage's symbols are chosen first; the residual latent is then
        taken against the synthesis of those chosen symbols, so it makes up for what their
        rounding lost, and its own symbols are chosen last."""
        y, y_symbols, z_symbols = self.latents_of(rgb, level, step, latent)
        if tau <= 0:
            return self.tables.encode_choosing(y_symbols, z_symbols)
        weights = self._gains(self.inverse_gains, level, step).astype(np.float64) ** 2 * self.channel_weights  # M
        t = self.transform_channels
        refresh = bool(self.detail_channels) and t in np.cumsum((0,) + self.tables.groups)  # it starts a group
        gains = self._gains(self.gains, level, step)

        def choose(start: int, rows: np.ndarray, mask: np.ndarray | None, chosen: np.ndarray) -> np.ndarray:
            if refresh and start == t:  # the residual against the chosen first stage
                detail = self._detail(rgb, chosen[:t], level, step) * gains[t:, None, None]  # D,h,w
                y[t:] = detail
                y_symbols[t:] = np.searchsorted(self.y_thresholds, detail)
            end = start + rows.shape[0]
            values, nearest = y[start:end], y_symbols[start:end]
            if mask is not None:
                values, nearest = values[:, mask], nearest[:, mask]
            return rd_choice(values, nearest, self._y_centers64, weights[start:end], tau, self.tables.y_rows, rows)

        return self.tables.encode_choosing(y_symbols, z_symbols, choose)

    def _detail(self, rgb: np.ndarray, first_symbols: np.ndarray, level: int, step: int) -> np.ndarray:
        """The residual stage's latent before its gains, D,h,w: the projection of the image minus
        the first stage's decoded image (the synthesis of its symbols, the residual channels at
        zero), band by band as the decoder makes them."""
        if self._detail_analysis is None:
            self._detail_analysis = OnnxGraph(graph_path(self.info, "detail_encoder"), self.threads)
        t, h, w = first_symbols.shape
        inverse = self._gains(self.inverse_gains, level, step)[:t, None, None]
        height, width = rgb.shape[:2]
        padded = np.pad(rgb, ((0, -height % MULTIPLE), (0, -width % MULTIPLE), (0, 0)), mode="edge")

        def latent_rows(a0: int, a1: int) -> np.ndarray:
            rows = np.zeros((t + self.detail_channels, a1 - a0, w), dtype=np.float32)  # M,rows,w
            rows[:t] = self.y_centers[first_symbols[:, a0:a1]] * inverse
            return rows

        detail = np.empty((self.detail_channels, h, w), dtype=np.float32)
        for r0, band in self.runtime.synthesis_bands(latent_rows, h, w):  # band: 3,rows,W
            top, rows = r0 * DOWNSCALE, band.shape[1]
            image = padded[top:top + rows].transpose(2, 0, 1).astype(np.float32) / 255.0
            detail[:, r0:r0 + rows // DOWNSCALE] = self._detail_analysis(np.ascontiguousarray(image - band), 0)
        return detail

    def _payload(self, rgb: np.ndarray, level: int, rounding: str,
                 progress: Progress | None) -> tuple[bytes, float]:
        payload, bits, _ = self.encode_symbols(rgb, level, 0, self._tau(level, 0) if rounding == "rd" else 0.0)
        return payload, bits

    def encode_at(self, image: np.ndarray, position: float, metadata: Metadata | None = None,
                  latent: np.ndarray | None = None, rounding: str = "rd") -> EncodeResult:
        """Encode at a continuous quality position, 1 (lowest level) .. N (highest); `latent`:
        the image's analysis, if already computed; rounding as in encode()."""
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
        top = len(self.qualities)
        if isinstance(position, bool) or not isinstance(position, (int, float, np.integer, np.floating)) \
                or not 1 <= position <= top:
            raise ValueError(f"position must be a number in 1..{top}, got {position!r}")
        self._check_image(image)
        level = min(int(np.floor(position)) - 1, top - 1)
        step = int(round((position - 1 - level) * STEPS))
        if step == STEPS:
            level, step = level + 1, 0
        rgb = np.ascontiguousarray(image[..., :3])
        tau = self._tau(level, step) if rounding == "rd" else 0.0
        payload, estimate, _ = self.encode_symbols(rgb, level, step, tau, latent)
        extra = (Segment(SEGMENT_LEVEL_STEP, step.to_bytes(2, "little")),) if step else ()
        return self._file_of(image, payload, estimate, level, metadata, extra)

    def encode_to_size(self, image: np.ndarray, max_bytes: int, rounding: str = "rd",
                       metadata: Metadata | None = None) -> EncodeResult:
        """The highest level that fits (bisection over the levels), then the highest position
        between it and the next that still fits (bisection over the interpolated gains, to
        1/1024 of a level); the smallest level when none fits. The analysis does not depend on
        the level, so it runs once."""
        self._check_image(image)
        latent = self.analysis(np.ascontiguousarray(image[..., :3]))
        best = self._highest_fitting(lambda level: self.encode_at(image, level + 1, metadata, latent, rounding),
                                     max_bytes)
        if best is None:
            return self.encode_at(image, 1, metadata, latent, rounding)
        level = best.quality - 1
        if level + 1 >= len(self.qualities):
            return best
        low, high = float(level + 1), float(level + 2)  # positions: low fits, high does not
        for _ in range(10):
            mid = (low + high) / 2
            trial = self.encode_at(image, mid, metadata, latent, rounding)
            if len(trial.data) <= max_bytes:
                best, low = trial, mid
            else:
                high = mid
        return best

    def _step_of(self, shae: ShaeFile) -> int:
        segment = shae.segment(SEGMENT_LEVEL_STEP)
        if segment is None:
            return 0
        step = int.from_bytes(segment.payload, "little") if len(segment.payload) == 2 else 0
        if not 0 < step < STEPS or shae.level >= len(self.qualities):
            raise FormatError("the level-step segment is malformed (a 16-bit step above 0, below a top level)")
        return step

    def decode_symbols(self, shae: ShaeFile) -> tuple[np.ndarray, np.ndarray]:
        """The file's symbols as the range decoder reads them, y M,h,w and z Cz,h/4,w/4: chosen by
        integer networks, so the same on every machine and thread count."""
        h, w = (-(-side // MULTIPLE) * MULTIPLE // DOWNSCALE for side in (shae.height, shae.width))
        return self.tables.decode(self._latent_segment(shae), h, w)

    def _bands(self, shae: ShaeFile) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
        y_symbols, _ = self.decode_symbols(shae)
        return self._bands_of(y_symbols, shae.level - 1, self._step_of(shae), shae.height, shae.width)

    def _bands_of(self, y_symbols: np.ndarray, level: int, step: int, height: int,
                  width: int) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
        """The decoded image of y symbols M,h,w: the band count and the bands (top row, rows,W,3 uint8)."""
        h, w = y_symbols.shape[1:]
        scale = self._gains(self.inverse_gains, level, step)[:, None, None]

        def latent_rows(a0: int, a1: int) -> np.ndarray:
            return (self.y_centers[y_symbols[:, a0:a1]] * scale).astype(np.float32)  # M,rows,w

        def bands() -> Iterator[tuple[int, np.ndarray]]:
            for r0, band in self.runtime.synthesis_bands(latent_rows, h, w):
                top = r0 * DOWNSCALE
                band = band[:, :max(0, height - top), :width]  # 3,rows,W cropped to the image
                yield top, np.clip(np.rint(band * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)

        return self.runtime.band_count(h, w), bands()

    def pixels_of(self, y_symbols: np.ndarray, level: int, width: int, height: int, step: int = 0) -> np.ndarray:
        """The image a decoder makes of y symbols M,h,w at a level (as Codec.pixels_of): H,W,3 uint8."""
        _, bands = self._bands_of(y_symbols, level, step, height, width)
        return np.concatenate([band for _, band in bands], axis=0)
