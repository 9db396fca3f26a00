"""Codecs that ``shaec bench`` compares: a small common interface and one class per codec.

Every codec turns an (H, W, 3) uint8 RGB array into bytes at one quality setting and back.
The image size is passed to :meth:`BenchCodec.decode` out of band, as a container would store it;
the counted rate is always ``len(encode(...))``.

Command-line codecs (bpgenc, avifenc, cjxl, ffmpeg) run as subprocesses on temporary files or
pipes, so their encode and decode times include process start-up and file I/O (a few ms);
Pillow codecs run in-process. Compare times between codecs of the same kind only.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence, Union

import numpy as np

Quality = Union[int, float]


class BenchCodec(ABC):
    """One codec with a fixed configuration; ``quality`` selects the rate-distortion point.

    Subclasses are small frozen dataclasses, so codec objects pickle cheaply into worker
    processes.
    """

    name: str
    description: str

    @abstractmethod
    def qualities(self) -> tuple[Quality, ...]:
        """Quality settings to benchmark, from lowest to highest quality."""

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """Why the codec cannot run here (missing tool or library), or None when it can."""

    def available(self) -> bool:
        """True when the codec can run on this machine."""
        return self.unavailable_reason() is None

    @abstractmethod
    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        """Compress an (H, W, 3) uint8 RGB image."""

    @abstractmethod
    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        """Decompress to an (height, width, 3) uint8 RGB image."""


# --------------------------------------------------------------------------- helpers


def _missing_tools(*tools: str) -> str | None:
    """A reason string naming the tools not on PATH, or None when all are present."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found on PATH"
    return None


def _run(command: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Run a command, return its stdout; raise RuntimeError with its stderr when it fails."""
    completed = subprocess.run(list(command), input=stdin, capture_output=True, check=False)
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"{command[0]} exited with {completed.returncode}: {message}")
    return completed.stdout


def _read_rgb(path: Path) -> np.ndarray:
    """Load an image file written by a decoder as an (H, W, 3) uint8 array."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _rgb_from_bytes(data: bytes) -> np.ndarray:
    """Decode image bytes with Pillow to an (H, W, 3) uint8 array."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _save_png_fast(rgb: np.ndarray, path: Path) -> None:
    """Write an uncompressed PNG (fast, so it barely counts in the measured encode time)."""
    from PIL import Image

    Image.fromarray(rgb).save(path, format="PNG", compress_level=0)


def _check_size(rgb: np.ndarray, width: int, height: int, codec: str) -> np.ndarray:
    """Return rgb if it is (height, width, 3), else raise RuntimeError naming the codec."""
    if rgb.shape != (height, width, 3):
        raise RuntimeError(f"{codec} decoded shape {rgb.shape}, expected {(height, width, 3)}")
    return rgb


# --------------------------------------------------------------------------- Pillow codecs


@dataclass(frozen=True)
class PillowJpeg(BenchCodec):
    """Baseline JPEG through Pillow (libjpeg-turbo), Pillow's default Huffman tables.

    ``subsampling`` uses Pillow's codes: 2 = 4:2:0 (libjpeg default), 0 = 4:4:4.
    """

    name: str = "jpeg"
    subsampling: int = 2
    quality_settings: tuple[Quality, ...] = tuple(range(5, 100, 5))

    @property
    def description(self) -> str:  # type: ignore[override]
        chroma = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}[self.subsampling]
        return f"JPEG (Pillow/libjpeg-turbo), {chroma}, quality = libjpeg quality"

    def qualities(self) -> tuple[Quality, ...]:
        return self.quality_settings

    def unavailable_reason(self) -> str | None:
        from PIL import features

        return None if features.check("jpg") else "Pillow was built without JPEG support"

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(quality),
                                  subsampling=self.subsampling)
        return buffer.getvalue()

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        return _check_size(_rgb_from_bytes(data), width, height, self.name)


@dataclass(frozen=True)
class PillowWebP(BenchCodec):
    """Lossy WebP through Pillow's libwebp (method 4, the cwebp and libwebp default; 4:2:0)."""

    name: str = "webp"
    method: int = 4
    quality_settings: tuple[Quality, ...] = tuple(range(5, 100, 10))

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"WebP lossy (Pillow/libwebp), method {self.method}, quality = cwebp -q"

    def qualities(self) -> tuple[Quality, ...]:
        return self.quality_settings

    def unavailable_reason(self) -> str | None:
        from PIL import features

        return None if features.check("webp") else "Pillow was built without WebP support"

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="WEBP", quality=int(quality), method=self.method)
        return buffer.getvalue()

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        return _check_size(_rgb_from_bytes(data), width, height, self.name)


@dataclass(frozen=True)
class PillowJpeg2000(BenchCodec):
    """JPEG 2000 through Pillow (OpenJPEG): raw .j2k codestream, 9/7 irreversible wavelet,
    irreversible colour transform (ICT, ``mct=1``), one quality layer.

    The quality setting is OpenJPEG's compression ratio against the raw 24-bit image,
    so the target rate is 24 / ratio bpp.
    """

    name: str = "jpeg2000"
    quality_settings: tuple[Quality, ...] = (200, 150, 100, 75, 50, 35, 25, 16, 10)

    @property
    def description(self) -> str:  # type: ignore[override]
        return "JPEG 2000 (Pillow/OpenJPEG), 9/7 + ICT, quality = compression ratio (24/ratio bpp)"

    def qualities(self) -> tuple[Quality, ...]:
        return self.quality_settings

    def unavailable_reason(self) -> str | None:
        from PIL import features

        return None if features.check("jpg_2000") else "Pillow was built without OpenJPEG"

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        from PIL import Image

        height, width = rgb.shape[:2]
        # OpenJPEG needs 2**(resolutions-1) <= the short side; 6 resolutions is its default.
        resolutions = max(1, min(6, int(math.log2(min(height, width))) + 1))
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(
            buffer, format="JPEG2000", no_jp2=True, irreversible=True, mct=1,
            quality_mode="rates", quality_layers=[float(quality)], num_resolutions=resolutions)
        return buffer.getvalue()

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        return _check_size(_rgb_from_bytes(data), width, height, self.name)


# --------------------------------------------------------------------------- command-line codecs


@dataclass(frozen=True)
class AvifEnc(BenchCodec):
    """AVIF through libavif's avifenc/avifdec (AV1 by libaom), 4:4:4, full range, speed 6.

    avifenc 0.11 has no ``-q``; the quality setting is the AV1 quantizer (0..63, lower is
    better) passed as both ``--min`` and ``--max``. One worker thread (``-j 1``).
    """

    name: str = "avif"
    speed: int = 6
    quality_settings: tuple[Quality, ...] = (58, 50, 42, 34, 26, 18, 10)

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"AVIF (avifenc, libaom), 4:4:4, speed {self.speed}, quality = quantizer --min/--max"

    def qualities(self) -> tuple[Quality, ...]:
        return self.quality_settings

    def unavailable_reason(self) -> str | None:
        return _missing_tools("avifenc", "avifdec")

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        with tempfile.TemporaryDirectory(prefix="bench-avif-") as tmp:
            source, encoded = Path(tmp) / "in.png", Path(tmp) / "out.avif"
            _save_png_fast(rgb, source)
            q = str(int(quality))
            _run(["avifenc", "-j", "1", "-s", str(self.speed), "-y", "444", "-r", "full",
                  "--min", q, "--max", q, str(source), str(encoded)])
            return encoded.read_bytes()

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="bench-avif-") as tmp:
            encoded, decoded = Path(tmp) / "in.avif", Path(tmp) / "out.png"
            encoded.write_bytes(data)
            _run(["avifdec", "-j", "1", "-d", "8", "--png-compress", "0",
                  str(encoded), str(decoded)])
            return _check_size(_read_rgb(decoded), width, height, self.name)


@dataclass(frozen=True)
class CjxlJpegXL(BenchCodec):
    """JPEG XL through libjxl's cjxl/djxl (lossy VarDCT, effort 7 = default, one thread).

    The quality setting is the Butteraugli distance ``-d`` (lower is better; 1.0 is
    "visually lossless").
    """

    name: str = "jpeg-xl"
    effort: int = 7
    quality_settings: tuple[Quality, ...] = (10.0, 7.0, 5.0, 3.5, 2.5, 1.8, 1.2, 0.8, 0.5)

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"JPEG XL (cjxl), effort {self.effort}, quality = distance -d"

    def qualities(self) -> tuple[Quality, ...]:
        return self.quality_settings

    def unavailable_reason(self) -> str | None:
        return _missing_tools("cjxl", "djxl")

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="bench-jxl-") as tmp:
            source, encoded = Path(tmp) / "in.ppm", Path(tmp) / "out.jxl"
            Image.fromarray(rgb).save(source, format="PPM")
            _run(["cjxl", str(source), str(encoded), "-d", f"{float(quality):g}",
                  "-e", str(self.effort), "--num_threads=0", "--quiet"])
            return encoded.read_bytes()

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="bench-jxl-") as tmp:
            encoded, decoded = Path(tmp) / "in.jxl", Path(tmp) / "out.ppm"
            encoded.write_bytes(data)
            _run(["djxl", str(encoded), str(decoded), "--num_threads=0",
                  "--bits_per_sample=8", "--quiet"])
            return _check_size(_read_rgb(decoded), width, height, self.name)


@dataclass(frozen=True)
class BpgEnc(BenchCodec):
    """BPG with Fabrice Bellard's bpgenc/bpgdec, when they are on PATH.

    ``bpgenc -o OUT -q QP -f 444 -e x265 -c ycbcr -b 8 IN`` and ``bpgdec -o REC.png OUT``:
    the x265 encoder at bpgenc's default compression level 8 (x265 preset veryslow, tune
    ssim), BT.601 YCbCr in full range, 8 bits, 4:4:4. The quality setting is bpgenc's
    ``-q`` (QP, 0..51, lower is better; bpgenc's default is 28).
    """

    name: str = "bpg"
    chroma_format: str = "444"
    quality_settings: tuple[Quality, ...] = (47, 42, 37, 32, 27, 22)

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"BPG (bpgenc, x265), {self.chroma_format}, quality = QP -q"

    def qualities(self) -> tuple[Quality, ...]:
        return self.quality_settings

    def unavailable_reason(self) -> str | None:
        return _missing_tools("bpgenc", "bpgdec")

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        with tempfile.TemporaryDirectory(prefix="bench-bpg-") as tmp:
            source, encoded = Path(tmp) / "in.png", Path(tmp) / "out.bpg"
            _save_png_fast(rgb, source)
            _run(["bpgenc", "-o", str(encoded), "-q", str(int(quality)), "-f", self.chroma_format,
                  "-e", "x265", "-c", "ycbcr", "-b", "8", str(source)])
            return encoded.read_bytes()

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="bench-bpg-") as tmp:
            encoded, decoded = Path(tmp) / "in.bpg", Path(tmp) / "out.png"
            encoded.write_bytes(data)
            _run(["bpgdec", "-o", str(decoded), str(encoded)])
            return _check_size(_read_rgb(decoded), width, height, self.name)


# --------------------------------------------------------------------------- BPG emulation

#: BT.601 luma weights (ITU-R BT.601; JFIF and bpgenc ``-c ycbcr``).
BT601_KR = 0.299
BT601_KB = 0.114
BT601_KG = 1.0 - BT601_KR - BT601_KB


def rgb_to_ycbcr_bt601_full(rgb: np.ndarray) -> np.ndarray:
    """RGB -> YCbCr, BT.601 matrix, full range (as JFIF and bpgenc's default), rounded to uint8.

    With Kr = 0.299, Kb = 0.114, Kg = 1 - Kr - Kb = 0.587 and R, G, B in 0..255::

        Y  = Kr R + Kg G + Kb B
        Cb = 128 + (B - Y) / (2 (1 - Kb))  = 128 - 0.168736 R - 0.331264 G + 0.5 B
        Cr = 128 + (R - Y) / (2 (1 - Kr))  = 128 + 0.5 R - 0.418688 G - 0.081312 B

    No headroom or footroom: Y, Cb and Cr each use all of 0..255 (clipped, rounded to nearest).
    Input (H, W, 3) uint8, output (H, W, 3) uint8 in Y, Cb, Cr order.
    """
    rgb_f = rgb.astype(np.float64)  # (H, W, 3)
    red, green, blue = rgb_f[..., 0], rgb_f[..., 1], rgb_f[..., 2]  # (H, W) each
    luma = BT601_KR * red + BT601_KG * green + BT601_KB * blue
    cb = 128.0 + (blue - luma) / (2.0 * (1.0 - BT601_KB))
    cr = 128.0 + (red - luma) / (2.0 * (1.0 - BT601_KR))
    ycbcr = np.stack([luma, cb, cr], axis=-1)  # (H, W, 3)
    return np.clip(np.rint(ycbcr), 0, 255).astype(np.uint8)


def ycbcr_to_rgb_bt601_full(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr_bt601_full` (float input allowed, e.g. upsampled chroma)::

        R = Y + 2 (1 - Kr) (Cr - 128)                      = Y + 1.402 (Cr - 128)
        B = Y + 2 (1 - Kb) (Cb - 128)                      = Y + 1.772 (Cb - 128)
        G = (Y - Kr R - Kb B) / Kg = Y - 0.344136 (Cb - 128) - 0.714136 (Cr - 128)

    Input (H, W, 3) in Y, Cb, Cr order, output (H, W, 3) uint8 RGB (clipped, rounded).
    """
    ycbcr_f = ycbcr.astype(np.float64)  # (H, W, 3)
    luma, cb, cr = ycbcr_f[..., 0], ycbcr_f[..., 1] - 128.0, ycbcr_f[..., 2] - 128.0
    red = luma + 2.0 * (1.0 - BT601_KR) * cr
    blue = luma + 2.0 * (1.0 - BT601_KB) * cb
    green = (luma - BT601_KR * red - BT601_KB * blue) / BT601_KG
    rgb = np.stack([red, green, blue], axis=-1)  # (H, W, 3)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def downsample_chroma_2x2(plane: np.ndarray) -> np.ndarray:
    """Average each 2x2 block (chroma sited at the block centre, as JPEG and BPG's ``-f 420``).

    Input (H, W) uint8 with H, W even; output (H/2, W/2) uint8, rounded to nearest.
    """
    height, width = plane.shape
    blocks = plane.astype(np.uint16).reshape(height // 2, 2, width // 2, 2)  # (H/2, 2, W/2, 2)
    return ((blocks.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8)


def _upsample_axis_centered(plane: np.ndarray, axis: int) -> np.ndarray:
    """Double one axis with centred siting: weights 3/4 and 1/4 of the nearest two samples
    (libjpeg's "fancy" triangle upsampling), edges replicated. Float in, float out."""
    previous = np.concatenate([np.take(plane, [0], axis=axis),
                               np.take(plane, range(plane.shape[axis] - 1), axis=axis)], axis=axis)
    following = np.concatenate([np.take(plane, range(1, plane.shape[axis]), axis=axis),
                                np.take(plane, [-1], axis=axis)], axis=axis)
    even = 0.75 * plane + 0.25 * previous  # output sample 2i sits 1/4 before input i
    odd = 0.75 * plane + 0.25 * following  # output sample 2i+1 sits 1/4 after input i
    stacked = np.stack([even, odd], axis=axis + 1)  # (..., n, 2, ...)
    shape = list(plane.shape)
    shape[axis] *= 2
    return stacked.reshape(shape)


def upsample_chroma_2x2(plane: np.ndarray) -> np.ndarray:
    """Inverse of :func:`downsample_chroma_2x2` by bilinear interpolation: (h, w) -> (2h, 2w) float."""
    plane_f = plane.astype(np.float64)  # (h, w)
    return _upsample_axis_centered(_upsample_axis_centered(plane_f, 0), 1)  # (2h, 2w)


@dataclass(frozen=True)
class BpgX265(BenchCodec):
    """Emulation of bpgenc 0.9.8 with x265 through ffmpeg's libx265, for machines without bpgenc.

    Settings follow bpgenc 0.9.8 (libbpg ``x265_glue.c`` and ``bpgenc.c`` defaults):
    RGB -> YCbCr with the BT.601 matrix in full range (done here in numpy, see
    :func:`rgb_to_ycbcr_bt601_full`), 8 bits, 4:4:4 (or 4:2:0 for the ``-420`` variant),
    x265 preset veryslow (bpgenc's default compression level 8) with tune ssim, one intra
    frame (keyint 1), constant QP: ``-x265-params qp=Q:keyint=1:info=0``. As in bpgenc, x265's
    CQP mode lowers the QP of the I-slice by 6*log2(ipratio 1.4) ~ 3.

    Raw planes go through pipes (``-f rawvideo``, yuv444p or yuv420p) in both directions and
    the decoder's native format is read back without ``-pix_fmt``, so ffmpeg's swscale never
    touches the samples and cannot change their range (the stream carries no range flag, as
    in BPG files, where the range lives in the BPG header). For 4:2:0 the image is padded
    to even size by edge replication and cropped back after decoding; chroma is averaged
    over 2x2 blocks and interpolated bilinearly (centred siting, as BPG's ``-f 420``).

    Rate: the bytes of the raw HEVC stream (VPS, SPS, PPS, slice). A .bpg file replaces the
    parameter sets by its own compact header, so it would be a few tens of bytes smaller;
    this matters only for tiny images. Always labelled ``bpg-x265``, never ``bpg``.
    """

    name: str = "bpg-x265"
    chroma_format: str = "444"  # "444" or "420"
    preset: str = "veryslow"
    tune: str = "ssim"
    threads: int = 1  # x265 thread pool size; the bitstream does not depend on it (WPP on)
    quality_settings: tuple[Quality, ...] = (47, 42, 37, 32, 27, 22)

    @property
    def description(self) -> str:  # type: ignore[override]
        return (f"bpgenc 0.9.8 emulation: ffmpeg libx265 {self.preset}/{self.tune}, intra, "
                f"BT.601 full-range YCbCr {self.chroma_format}, quality = QP (raw HEVC bytes)")

    def qualities(self) -> tuple[Quality, ...]:
        return self.quality_settings

    def unavailable_reason(self) -> str | None:
        missing = _missing_tools("ffmpeg")
        if missing:
            return missing
        try:
            encoders = _run(["ffmpeg", "-hide_banner", "-encoders"]).decode(errors="replace")
        except (OSError, RuntimeError) as error:
            return f"ffmpeg -encoders failed: {error}"
        if "libx265" not in encoders:
            return "ffmpeg was built without libx265"
        return None

    def _pix_fmt(self) -> str:
        if self.chroma_format == "444":
            return "yuv444p"
        if self.chroma_format == "420":
            return "yuv420p"
        raise ValueError(f"unsupported chroma format {self.chroma_format!r}")

    def _coded_size(self, width: int, height: int) -> tuple[int, int]:
        """Size given to x265: 4:2:0 needs even sides; 4:4:4 codes any size (x265 crops)."""
        if self.chroma_format == "420":
            return width + width % 2, height + height % 2
        return width, height

    def to_planes(self, rgb: np.ndarray) -> bytes:
        """RGB (H, W, 3) uint8 -> concatenated planar Y, Cb, Cr bytes for ffmpeg rawvideo."""
        height, width = rgb.shape[:2]
        coded_width, coded_height = self._coded_size(width, height)
        padded = np.pad(rgb, ((0, coded_height - height), (0, coded_width - width), (0, 0)),
                        mode="edge")  # (H2, W2, 3)
        ycbcr = rgb_to_ycbcr_bt601_full(padded)  # (H2, W2, 3)
        planes = [ycbcr[..., 0], ycbcr[..., 1], ycbcr[..., 2]]  # 3 x (H2, W2)
        if self.chroma_format == "420":
            planes[1:] = [downsample_chroma_2x2(p) for p in planes[1:]]  # 2 x (H2/2, W2/2)
        return b"".join(np.ascontiguousarray(p).tobytes() for p in planes)

    def from_planes(self, raw: bytes, width: int, height: int) -> np.ndarray:
        """Planar Y, Cb, Cr bytes of the coded size -> RGB (height, width, 3) uint8."""
        coded_width, coded_height = self._coded_size(width, height)
        if self.chroma_format == "420":
            chroma_shape = (coded_height // 2, coded_width // 2)
        else:
            chroma_shape = (coded_height, coded_width)
        luma_size = coded_width * coded_height
        chroma_size = chroma_shape[0] * chroma_shape[1]
        expected = luma_size + 2 * chroma_size
        if len(raw) != expected:
            raise RuntimeError(f"ffmpeg returned {len(raw)} bytes of {self._pix_fmt()}, "
                               f"expected {expected} for {coded_width}x{coded_height}")
        samples = np.frombuffer(raw, dtype=np.uint8)
        luma = samples[:luma_size].reshape(coded_height, coded_width)  # (H2, W2)
        cb = samples[luma_size:luma_size + chroma_size].reshape(chroma_shape)
        cr = samples[luma_size + chroma_size:].reshape(chroma_shape)
        if self.chroma_format == "420":
            cb, cr = upsample_chroma_2x2(cb), upsample_chroma_2x2(cr)  # (H2, W2) float each
        ycbcr = np.stack([luma.astype(np.float64), cb, cr], axis=-1)  # (H2, W2, 3)
        return ycbcr_to_rgb_bt601_full(ycbcr)[:height, :width]  # (H, W, 3)

    def encode_planes(self, planes: bytes, width: int, height: int, x265_params: str) -> bytes:
        """Encode raw planes of the coded size with the given x265 parameters; raw HEVC out."""
        coded_width, coded_height = self._coded_size(width, height)
        params = f"{x265_params}:keyint=1:info=0:log-level=error:pools={self.threads}"
        return _run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                     "-f", "rawvideo", "-pix_fmt", self._pix_fmt(),
                     "-s", f"{coded_width}x{coded_height}", "-r", "25", "-i", "pipe:0",
                     "-frames:v", "1", "-an", "-c:v", "libx265", "-preset", self.preset,
                     "-tune", self.tune, "-x265-params", params, "-f", "hevc", "pipe:1"],
                    stdin=planes)

    def decode_planes(self, data: bytes) -> bytes:
        """Decode raw HEVC to the decoder's native planar format, no pixel-format conversion."""
        return _run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                     "-f", "hevc", "-i", "pipe:0", "-frames:v", "1",
                     "-f", "rawvideo", "pipe:1"], stdin=data)

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        height, width = rgb.shape[:2]
        return self.encode_planes(self.to_planes(rgb), width, height, f"qp={int(quality)}")

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        return self.from_planes(self.decode_planes(data), width, height)


# --------------------------------------------------------------------------- shaec


@dataclass(frozen=True)
class ShaecCodec(BenchCodec):
    """This project's learned codec at every installed level, through ``imgcodec.codec``.

    ``imgcodec.codec`` is imported lazily, so the benchmark works (and reports this codec as
    unavailable) while that module or its weights are missing.
    """

    name: str = "shaec"
    tune: str = "psnr"  # imgcodec.zoo.TUNES: the default model or its MS-SSIM fine-tune
    model: str | None = None  # an installed model by name (codec name "shaec:NAME"); None: by tune

    @property
    def description(self) -> str:  # type: ignore[override]
        chosen = f"-m {self.model}" if self.model else f"--tune {self.tune}"
        return f"shaec learned codec (imgcodec.codec, {chosen}), quality = level"

    def _model(self) -> str:
        if self.model is not None:
            return self.model
        from imgcodec.zoo import tuned_model

        return tuned_model(self.tune).name

    def qualities(self) -> tuple[Quality, ...]:
        from imgcodec.codec import available_levels

        return tuple(sorted(available_levels(self._model())))

    def unavailable_reason(self) -> str | None:
        try:
            from imgcodec.codec import available_levels

            levels = available_levels(self._model())
        except Exception as error:  # import errors, missing weights, broken installs
            return f"imgcodec.codec unusable: {type(error).__name__}: {error}"
        if not levels:
            return "no shaec levels installed"
        return None

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        from imgcodec.codec import compress

        return compress(rgb, int(quality), model=self._model())

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        from imgcodec.codec import decompress

        decoded = np.asarray(decompress(data))
        if decoded.ndim == 3 and decoded.shape[2] == 4:
            decoded = decoded[..., :3]  # (H, W, 4) -> (H, W, 3): we only ever pass RGB
        return _check_size(decoded, width, height, self.name)


# --------------------------------------------------------------------------- registry

#: Every codec ``shaec bench`` knows, by name (read-only).
CODECS: Mapping[str, BenchCodec] = MappingProxyType({
    codec.name: codec
    for codec in (
        PillowJpeg(name="jpeg", subsampling=2),
        PillowJpeg(name="jpeg-444", subsampling=0),
        BpgEnc(name="bpg"),
        BpgX265(name="bpg-x265", chroma_format="444"),
        BpgX265(name="bpg-x265-420", chroma_format="420"),
        PillowWebP(),
        PillowJpeg2000(),
        AvifEnc(),
        CjxlJpegXL(),
        ShaecCodec(),
        ShaecCodec(name="shaec-ssim", tune="ssim"),
    )
})

#: Names of the emulated BPG codecs, left out of the default selection when real bpgenc runs.
BPG_EMULATIONS = ("bpg-x265", "bpg-x265-420")


def get_codecs(names: Sequence[str] | None = None) -> list[BenchCodec]:
    """Codecs by name, in the given order; None selects the default set.

    The default set is every registered codec, except that the ``bpg-x265`` emulations are
    dropped when real bpgenc is available (ask for them by name to run both). Availability is
    not checked here; the runner skips unavailable codecs. Raises ValueError for an unknown
    name, listing the valid ones.
    """
    if names is None:
        real_bpg = CODECS["bpg"].available()
        return [codec for name, codec in CODECS.items()
                if not (real_bpg and name in BPG_EMULATIONS)]
    unknown = [name for name in names if name not in CODECS and not _model_name(name)]
    if unknown:
        raise ValueError(f"unknown codec(s): {', '.join(unknown)}; "
                         f"valid names: {', '.join(CODECS)}, or {SHAEC_MODEL_PREFIX}MODEL for any installed model")
    return [CODECS[name] if name in CODECS else ShaecCodec(name=name, model=_model_name(name))
            for name in dict.fromkeys(names)]


#: ``shaec:NAME`` benchmarks the installed model NAME (``shaec`` is the default model).
SHAEC_MODEL_PREFIX = "shaec:"


def _model_name(codec_name: str) -> str:
    """The model of a ``shaec:NAME`` codec name ("" for any other name)."""
    return codec_name[len(SHAEC_MODEL_PREFIX):] if codec_name.startswith(SHAEC_MODEL_PREFIX) else ""
