"""The codec of shae-v9 models (imgcodec.train.shae_v9.ShaeV9, exported by
imgcodec.train.export.export_shae_v9): ONNX transforms and the integer entropy model.

Encode: pad to a multiple of 64 -> analysis (ONNX) -> gains of the level -> nearest y centers ->
hyper-analysis (ONNX) -> nearest z centers -> the passes of imgcodec.hyperprior. Decode: the
passes -> y's centers times the inverse gains -> synthesis (ONNX) -> crop. The whole image is one
band. Rate-distortion rounding is shae-v8's (its context prior); here both roundings are nearest.
"""
from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np

from .bitstream import ShaeFile
from .codec_base import ContainerCodec, Progress
from .errors import ModelNotFoundError
from .hyperprior import HyperpriorTables
from .zoo import ModelInfo

MULTIPLE = 64  # image sides are padded to this (the side latent is at 1/64)
DOWNSCALE = 16  # the latent's


class _Session:
    """An ONNX graph of one input and one output, created on first use."""

    def __init__(self, path: object, threads: int | None) -> None:
        self.path, self.threads, self.session = path, threads, None

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        if self.session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
            options.log_severity_level = 3
            self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        name = self.session.get_inputs()[0].name
        return self.session.run(None, {name: np.ascontiguousarray(tensor[None], dtype=np.float32)})[0][0]


class ShaeV9Codec(ContainerCodec):
    """A shae-v9 model, ready to encode and decode."""

    def __init__(self, info: ModelInfo, threads: int | None = None) -> None:
        super().__init__(info)
        for name, expected in info.meta["files"].items():
            if name in ("encoder.onnx", "hyper_encoder.onnx") and info.decode_only:
                continue
            try:
                digest = hashlib.sha256((info.folder / name).read_bytes()).hexdigest()
            except OSError as exc:
                raise ModelNotFoundError(f"model '{info.name}' is missing {name}") from exc
            if digest != expected:
                raise ModelNotFoundError(f"model '{info.name}': {name} is damaged (sha256 mismatch)")
        self.tables = HyperpriorTables.load(info.folder / "hyperprior.npz")
        with np.load(info.folder / "levels.npz") as levels:
            self.y_centers = levels["y_centers"].astype(np.float32)
            self.z_centers = levels["z_centers"].astype(np.float32)
            self.gains = levels["gains"].astype(np.float32)  # levels,M
            self.inverse_gains = levels["inverse_gains"].astype(np.float32)
        self.y_thresholds = (self.y_centers[1:] + self.y_centers[:-1]) / 2
        self.z_thresholds = (self.z_centers[1:] + self.z_centers[:-1]) / 2
        self.analysis = _Session(info.folder / "encoder.onnx", threads)
        self.hyper_analysis = _Session(info.folder / "hyper_encoder.onnx", threads)
        self.synthesis = _Session(info.folder / "decoder.onnx", threads)

    def symbols_of(self, rgb: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        """H,W,3 uint8 -> (y symbols M,h,w, z symbols Cz,h/4,w/4), nearest centers."""
        if self.info.decode_only:
            raise ModelNotFoundError(f"model '{self.info.name}' is retired and ships only its decoder")
        height, width = rgb.shape[:2]
        padded = np.pad(rgb, ((0, -height % MULTIPLE), (0, -width % MULTIPLE), (0, 0)), mode="edge")
        x = padded.transpose(2, 0, 1).astype(np.float32) / 255.0  # 3,H,W
        y = self.analysis(x) * self.gains[level][:, None, None]  # M,h,w
        z = self.hyper_analysis(y)
        return (np.searchsorted(self.y_thresholds, y).astype(np.int32),
                np.searchsorted(self.z_thresholds, z).astype(np.int32))

    def _payload(self, rgb: np.ndarray, level: int, rounding: str,
                 progress: Progress | None) -> tuple[bytes, float]:
        y_symbols, z_symbols = self.symbols_of(rgb, level)
        return self.tables.encode_with_cost(y_symbols, z_symbols)

    def _bands(self, shae: ShaeFile) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
        payload = self._latent_segment(shae)
        h, w = (-(-side // MULTIPLE) * MULTIPLE // DOWNSCALE for side in (shae.height, shae.width))
        y_symbols, _ = self.tables.decode(payload, h, w)
        level = shae.level - 1

        def bands() -> Iterator[tuple[int, np.ndarray]]:
            latent = self.y_centers[y_symbols] * self.inverse_gains[level][:, None, None]
            image = self.synthesis(latent)[:, :shae.height, :shae.width]  # 3,H,W
            yield 0, np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)

        return 1, bands()
