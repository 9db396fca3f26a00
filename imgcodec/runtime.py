"""Inference of the transforms with onnxruntime, tile by tile for large images.

Why onnxruntime and not torch: ``import torch`` alone costs ~2 s of a process's life, the ONNX
runtime ~0.3 s, and both run this conv stack equally fast on a CPU; the CLI is a short-lived
process. Training and export stay in PyTorch (``tests/test_runtime.py`` checks both agree).

Large images are processed in overlapping tiles: a margin as wide as the transforms' receptive
field (``ModelConfig.receptive_radius_latents``: 14 latents for the shipped layout)
makes every kept pixel equal to whole-image processing up to float rounding, so no seam shows and
memory stays bounded.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .config import DOWNSCALE
from .errors import ModelNotFoundError

#: Core tile of 160x160 latents = 1280x1280 pixels: a 1-megapixel photo is one tile (tiles cost
#: their overlap: at 96 latents a 1224x816 photo took 4 tiles and 35 % longer to synthesise),
#: and a tile's activations stay near 0.3 GB.
TILE_LATENTS = 160
MARGIN_LATENTS = 8  # overlap on each side; codec.Codec passes the model's own receptive radius


@lru_cache(maxsize=None)
def shared_cpu_arena() -> bool:
    """Register, once per process, one CPU memory arena in onnxruntime's environment for every
    OnnxGraph session to allocate from (session config "session.use_env_allocators"); returns
    whether it is there. Each session otherwise grows an arena of its own, which it keeps: an
    encode runs four graphs, and the decoder's activations then land on fresh pages beside the
    encoder's. Shared, `shaec roundtrip` of a megapixel (an encode and a decode in one process)
    peaks 11 % lower (docs/bench/speed-detail.md). Not every build of onnxruntime has it;
    without it each session keeps its own arena."""
    import onnxruntime as ort

    try:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))  # the default arena's settings
    except (AttributeError, RuntimeError):
        return False
    return True


class OnnxGraph:
    """One ONNX transform: a session whose graph takes (tensor, level int64 of shape 1)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if shared_cpu_arena():
            options.add_session_config_entry("session.use_env_allocators", "1")
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # Memory patterns are planned and kept per input shape, and tiles come in several shapes
        # (the edges): on a 24-megapixel image the kept plans grew shae-v9's peak memory by more
        # than half, and they bought no speed.
        options.enable_mem_pattern = False
        # Idle pool threads sleep instead of spinning after a run: the entropy model's integer
        # networks (numpy's BLAS) run next on the same cores, and spinning threads slowed them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if path.suffix == ".shaw":  # the graph travels inside, its weights compressed (docs/weights.md)
            from .weights.onnx_weights import session

            self.session = session(None, path.read_bytes(), options)
        else:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        # shae-v8's graphs take the level; shae-v9's gains live outside the graph.
        self.takes_level = any(i.name == "level" for i in self.session.get_inputs())

    def __call__(self, tensor: np.ndarray, level: int) -> np.ndarray:
        """tensor C,H,W -> output of the graph for it, without the batch axis."""
        feed = {self.input_name: tensor[None]}
        if self.takes_level:
            feed["level"] = np.array([level], dtype=np.int64)
        return self.session.run(None, feed)[0][0]


def _tiles(length: int, core: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of `core` size covering 0..length."""
    return [(s, min(s + core, length)) for s in range(0, length, core)]


class TransformRuntime:
    """Encoder and decoder ONNX sessions, created on first use."""

    def __init__(self, encoder_path: Path | None, decoder_path: Path, threads: int | None = None,
                 tile_latents: int = TILE_LATENTS, margin_latents: int = MARGIN_LATENTS,
                 downscale: int = DOWNSCALE, single_tile_latents: int | None = None) -> None:
        """single_tile_latents: the largest latent side run as one tile, untiled (default: a tile
        and its margins); larger latents go in tiles of tile_latents."""
        self.encoder_path, self.decoder_path = encoder_path, decoder_path
        self.threads = threads
        self.tile, self.margin = tile_latents, margin_latents
        self.single_tile = single_tile_latents
        self.downscale = downscale  # pixels per latent along a side
        self._encoder: OnnxGraph | None = None
        self._decoder: OnnxGraph | None = None

    def use_decoder(self, graph: Callable[[np.ndarray, int], np.ndarray]) -> None:
        """Run synthesis through this graph (OnnxGraph's call signature) instead of the model's:
        research scripts compare a recompressed decoder, or record what the decoder is fed."""
        self._decoder = graph  # type: ignore[assignment]

    def analysis(self, image: np.ndarray, level: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """image: 3,H,W float32 in [0,1], H and W multiples of the downscale d -> latent C,H/d,W/d
        float32 at this level (0-based). progress(done, total) is called after each tile of a large image."""
        if self.encoder_path is None:
            raise ModelNotFoundError("this model ships only its decoder; it cannot encode")
        if self._encoder is None:
            self._encoder = OnnxGraph(self.encoder_path, self.threads)
        d = self.downscale
        h, w = image.shape[1] // d, image.shape[2] // d
        if self._one_tile(h, w):
            return self._encoder(image, level)
        out = None
        total, done = len(_tiles(h, self.tile)) * len(_tiles(w, self.tile)), 0
        for r0, r1 in _tiles(h, self.tile):
            for c0, c1 in _tiles(w, self.tile):
                a0, a1 = max(0, r0 - self.margin), min(h, r1 + self.margin)
                b0, b1 = max(0, c0 - self.margin), min(w, c1 + self.margin)
                tile = image[:, a0 * d:a1 * d, b0 * d:b1 * d]
                latent = self._encoder(np.ascontiguousarray(tile), level)
                if out is None:
                    out = np.empty((latent.shape[0], h, w), dtype=np.float32)  # C,h,w
                out[:, r0:r1, c0:c1] = latent[:, r0 - a0:r1 - a0, c0 - b0:c1 - b0]
                done += 1
                if progress is not None:
                    progress(done, total)
        return out

    def synthesis(self, latent: np.ndarray, level: int = 0) -> np.ndarray:
        """latent: C,h,w float32 -> image 3,8h,8w float32 (not clamped) at this level (0-based)."""
        h, w = latent.shape[1:]
        bands = [band for _, band in self.synthesis_bands(lambda a0, a1: latent[:, a0:a1], h, w, level)]
        return bands[0] if len(bands) == 1 else np.concatenate(bands, axis=1)

    def band_count(self, h: int, w: int) -> int:
        """How many bands synthesis_bands yields for an h x w latent."""
        return 1 if self._one_tile(h, w) else len(_tiles(h, self.tile))

    def _one_tile(self, h: int, w: int) -> bool:
        limit = self.tile + 2 * self.margin if self.single_tile is None else self.single_tile
        return h <= limit and w <= limit

    def synthesis_bands(self, latent_rows: Callable[[int, int], np.ndarray], h: int, w: int,
                        level: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """The synthesis of an h x w latent one band of tiles at a time, top to bottom, so that
        memory holds one band and not the whole image: yields (first latent row, image rows
        3,8*rows,8w float32). latent_rows(a0, a1) gives latent rows a0..a1-1 (C,a1-a0,w float32)."""
        if self._decoder is None:
            self._decoder = OnnxGraph(self.decoder_path, self.threads)
        if self._one_tile(h, w):
            yield 0, self._decoder(np.ascontiguousarray(latent_rows(0, h)), level)
            return
        d = self.downscale
        for r0, r1 in _tiles(h, self.tile):
            a0, a1 = max(0, r0 - self.margin), min(h, r1 + self.margin)
            rows = latent_rows(a0, a1)  # C,a1-a0,w
            band = np.empty((3, (r1 - r0) * d, w * d), dtype=np.float32)  # 3,rows,W
            for c0, c1 in _tiles(w, self.tile):
                b0, b1 = max(0, c0 - self.margin), min(w, c1 + self.margin)
                rec = self._decoder(np.ascontiguousarray(rows[:, :, b0:b1]), level)
                band[:, :, c0 * d:c1 * d] = rec[:, (r0 - a0) * d:(r1 - a0) * d, (c0 - b0) * d:(c1 - b0) * d]
            yield r0, band
