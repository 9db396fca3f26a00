"""Tests for the library API (imgcodec.codec) with the shipped model.

Nothing here depends on which model is installed: its id, number of quality levels and rates
are always read from the installed model, so the tests keep working when it is retrained.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from imgcodec import bitstream
from imgcodec.bitstream import SEGMENT_ALPHA, SEGMENT_LATENT, Segment, ShaeFile
from imgcodec.codec import Codec, EncodeResult, compress, decompress, get_codec
from imgcodec.errors import FormatError, ImageInputError, ModelNotFoundError
from imgcodec.metrics import psnr_rgb
from imgcodec.zoo import find_model, find_model_by_id, list_models

SEED = 20240611

#: How far the real rate may be above/below the prior's ideal code length.
RATE_TOLERANCE = 0.03
RATE_SLACK_BYTES = 64  # container (header, segment table, CRC) and the coder's final words


# --------------------------------------------------------------------------------------------
# Helpers


def synthetic_rgb(height: int, width: int, seed: int = SEED, noise: float = 2.0) -> np.ndarray:
    """A smooth but textured H,W,3 uint8 image: gradients + sinusoids + a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 70 + 120 * x / max(width - 1, 1) + 25 * np.sin(x / 29.0) * np.cos(y / 37.0)
    g = 60 + 110 * y / max(height - 1, 1) + 20 * np.cos((x + 2 * y) / 41.0)
    b = (180 - 60 * (x + y) / max(height + width - 2, 1)
         + 20 * np.sin(np.hypot(x - width / 3, y - height / 2) / 19.0))
    image = np.stack([r, g, b], axis=-1) + rng.normal(0.0, noise, (height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def alpha_with_holes(height: int, width: int) -> np.ndarray:
    """A horizontal alpha gradient with fully transparent round holes and an opaque band."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    alpha = np.rint(255 * x / max(width - 1, 1))
    for cy, cx, radius in ((0.3, 0.3, 0.15), (0.7, 0.6, 0.2)):
        alpha[np.hypot(y - cy * height, x - cx * width) < radius * min(height, width)] = 0
    alpha[: max(1, height // 8)] = 255
    return alpha.astype(np.uint8)


def binary_mask(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.where((x // 5 + y // 3) % 3 == 0, 0, 255).astype(np.uint8)


def check_rate(result: EncodeResult) -> None:
    """The bytes on disk match the prior's cross-entropy within 3 % plus a fixed allowance."""
    real_bits = 8 * len(result.data)
    assert result.bpp == pytest.approx(real_bits / (result.width * result.height))
    allowed = RATE_TOLERANCE * result.estimated_bits + 8 * RATE_SLACK_BYTES
    assert abs(real_bits - result.estimated_bits) <= allowed, (
        f"{result.width}x{result.height} q{result.quality}: {result.bpp:.4f} bpp on disk vs "
        f"{result.estimated_bpp:.4f} bpp estimated")
    pixels = result.width * result.height
    assert abs(result.bpp - result.estimated_bpp) <= (RATE_TOLERANCE * result.estimated_bpp
                                                      + 8 * RATE_SLACK_BYTES / pixels)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging) if the block runs longer than `seconds` (main thread, POSIX)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def expect_format_error(data: bytes, what: str) -> None:
    """decompress(data) raises FormatError with a one-line message, and nothing else."""
    try:
        decompress(data)
    except FormatError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"{what}: message {message!r}"
        return
    except Exception as exc:  # noqa: BLE001 - the point is to report any other type
        pytest.fail(f"{what}: raised {type(exc).__name__}: {exc}")
    pytest.fail(f"{what}: decoded without an error")


@pytest.fixture(scope="module")
def codec() -> Codec:
    """shae-v8's codec, which this module tests (shae-v9's: tests/train/test_codec_v9.py)."""
    return get_codec("shae-v8")


@pytest.fixture(scope="module")
def small_file() -> bytes:
    """A 24x16 (W x H) .shae file with a latent and an alpha segment."""
    image = np.dstack([synthetic_rgb(16, 24, seed=3), alpha_with_holes(16, 24)])
    data = compress(image)
    assert [s.kind for s in bitstream.unpack(data).segments] == [SEGMENT_LATENT, SEGMENT_ALPHA]
    return data


# --------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("height,width", [(1, 1), (3, 5), (17, 31)])
def test_round_trip_small_sizes(codec: Codec, height: int, width: int) -> None:
    image = synthetic_rgb(height, width)
    for quality in (codec.qualities[0], codec.qualities[-1]):
        result = codec.encode(image, quality)
        assert (result.width, result.height, result.quality) == (width, height, quality)
        check_rate(result)
        out = decompress(result.data)
        assert out.shape == (height, width, 3)
        assert out.dtype == np.uint8
        assert out.flags.c_contiguous
    # The module-level functions agree with the codec object (default quality).
    data = compress(image)
    assert bitstream.unpack(data).level == find_model().default_quality
    assert decompress(data).shape == (height, width, 3)


@pytest.mark.parametrize("height,width", [(768, 512), (512, 768)])
def test_round_trip_large_sizes(codec: Codec, height: int, width: int) -> None:
    image = synthetic_rgb(height, width)
    psnr = {}
    for quality in (codec.qualities[0], codec.qualities[-1]):
        result = codec.encode(image, quality)
        check_rate(result)
        out = decompress(result.data)
        assert out.shape == image.shape and out.dtype == np.uint8
        psnr[quality] = psnr_rgb(image, out)
    low, top = psnr[codec.qualities[0]], psnr[codec.qualities[-1]]
    assert top > 25.0, f"PSNR at the top quality is only {top:.2f} dB"
    assert top > low, f"top quality {top:.2f} dB is not better than the lowest {low:.2f} dB"


def test_encoding_is_deterministic_in_process(codec: Codec) -> None:
    image = synthetic_rgb(40, 56)
    first = codec.encode(image, codec.qualities[-1]).data
    assert codec.encode(image, codec.qualities[-1]).data == first
    assert np.array_equal(decompress(first), decompress(first))


def test_input_array_is_not_modified(codec: Codec) -> None:
    image = np.dstack([synthetic_rgb(20, 30), alpha_with_holes(20, 30)])
    before = image.copy()
    codec.encode(image, codec.qualities[0])
    assert np.array_equal(image, before)


def test_non_contiguous_input(codec: Codec) -> None:
    image = synthetic_rgb(40, 60)
    view = image[::2, ::3]  # a strided view
    assert not view.flags.c_contiguous
    quality = codec.qualities[0]
    assert codec.encode(view, quality).data == codec.encode(np.ascontiguousarray(view), quality).data


# --------------------------------------------------------------------------------------------
# Alpha


@pytest.mark.parametrize("make_alpha", [alpha_with_holes, binary_mask], ids=["gradient-holes", "binary"])
def test_rgba_alpha_is_lossless(codec: Codec, make_alpha) -> None:
    height, width = 45, 70
    rgb = synthetic_rgb(height, width)
    alpha = make_alpha(height, width)
    image = np.dstack([rgb, alpha])
    data = compress(image, codec.qualities[0])
    kinds = [s.kind for s in bitstream.unpack(data).segments]
    assert kinds == [SEGMENT_LATENT, SEGMENT_ALPHA]
    out = decompress(data)
    assert out.shape == (height, width, 4) and out.dtype == np.uint8
    assert np.array_equal(out[..., 3], alpha)
    # The colour planes are the same as coding the RGB alone.
    assert np.array_equal(out[..., :3], decompress(compress(rgb, codec.qualities[0])))


def test_rgba_fully_opaque_gives_rgb(codec: Codec) -> None:
    rgb = synthetic_rgb(30, 20)
    image = np.dstack([rgb, np.full((30, 20), 255, np.uint8)])
    data = compress(image)
    assert [s.kind for s in bitstream.unpack(data).segments] == [SEGMENT_LATENT]
    assert data == compress(rgb)
    out = decompress(data)
    assert out.shape == (30, 20, 3)


# --------------------------------------------------------------------------------------------
# Missing model


def test_unknown_model_id_names_the_wanted_weights(small_file: bytes) -> None:
    shae = bitstream.unpack(small_file)
    installed = {info.model_id for info in list_models()}
    other = bytes(b ^ 0xA5 for b in shae.model_id)
    assert other.hex() not in installed
    data = bitstream.pack(ShaeFile(other, shae.level, shae.width, shae.height, shae.segments))
    bitstream.unpack(data)  # the container itself is intact (valid CRC)
    with pytest.raises(ModelNotFoundError) as exc_info:
        decompress(data)
    assert other.hex() in str(exc_info.value)
    assert not isinstance(exc_info.value, FormatError)


def test_retired_model_names_the_commit_that_has_it(tmp_path: Path) -> None:
    """A model moved out of models/ is listed under "retired"; its files get a pointer."""
    retired_id = "0123456789abcdef"
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"models": {}, "retired": {"shae-old": {"model_id": retired_id, "last_commit": "c0ffee1"}}}))
    with pytest.raises(ModelNotFoundError) as exc_info:
        find_model_by_id(bytes.fromhex(retired_id), tmp_path)
    message = str(exc_info.value)
    assert "shae-old" in message and "c0ffee1" in message and retired_id in message
    with pytest.raises(ModelNotFoundError, match="not installed"):  # any other id: the usual error
        find_model_by_id(bytes.fromhex("fedcba9876543210"), tmp_path)


# --------------------------------------------------------------------------------------------
# Hostile input: everything is a FormatError, nothing hangs


def test_every_truncation_is_a_format_error(small_file: bytes) -> None:
    with deadline(60):
        for length in range(len(small_file)):
            expect_format_error(small_file[:length], f"truncated to {length} of {len(small_file)} bytes")


def test_random_single_bit_flips_are_format_errors(small_file: bytes) -> None:
    rng = np.random.default_rng(SEED)
    flips = 1200
    positions = rng.integers(0, 8 * len(small_file), flips)
    started = time.perf_counter()
    with deadline(60):
        for bit in positions:
            data = bytearray(small_file)
            data[bit // 8] ^= 1 << (bit % 8)
            expect_format_error(bytes(data), f"bit {bit} flipped")
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("kind", ["random", "empty", "png", "shae-magic-random", "appended"])
def test_foreign_data_is_a_format_error(small_file: bytes, kind: str) -> None:
    import io

    from PIL import Image

    rng = np.random.default_rng(SEED)
    if kind == "random":
        samples = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (1, 3, 4, 27, 28, 100, 5000)]
    elif kind == "empty":
        samples = [b""]
    elif kind == "png":
        buf = io.BytesIO()
        Image.fromarray(synthetic_rgb(8, 8)).save(buf, format="PNG")
        samples = [buf.getvalue()]
    elif kind == "shae-magic-random":  # right magic and version, garbage after
        samples = [small_file[:5] + rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (0, 20, 200)]
    else:
        samples = [small_file + b"\x00", small_file + small_file]
    with deadline(30):
        for i, sample in enumerate(samples):
            expect_format_error(sample, f"{kind} sample {i}")


def _repacked(data: bytes, **changes: object) -> bytes:
    """The file with fields replaced and a freshly computed (valid) CRC."""
    shae = bitstream.unpack(data)
    fields = dict(model_id=shae.model_id, level=shae.level, width=shae.width, height=shae.height,
                  segments=shae.segments)
    fields.update(changes)
    return bitstream.pack(ShaeFile(**fields))


def test_bad_fields_behind_a_valid_crc_are_format_errors(codec: Codec, small_file: bytes) -> None:
    shae = bitstream.unpack(small_file)
    latent, alpha = shae.segment(SEGMENT_LATENT), shae.segment(SEGMENT_ALPHA)
    cases = {
        "level 0": _repacked(small_file, level=0),
        "level above the model's": _repacked(small_file, level=len(codec.qualities) + 1),
        "level 255": _repacked(small_file, level=255),
        "no latent segment": _repacked(small_file, segments=(alpha,)),
        "latent not whole words": _repacked(small_file, segments=(Segment(SEGMENT_LATENT, latent.payload[:-1]), alpha)),
        "width above the codec limit": _repacked(small_file, width=bitstream.MAX_SIDE),
        "alpha not a PNG": _repacked(small_file, segments=(latent, Segment(SEGMENT_ALPHA, b"garbage"))),
        "alpha truncated": _repacked(small_file, segments=(latent, Segment(SEGMENT_ALPHA, alpha.payload[:-13]))),
        "alpha of the wrong size": _repacked(small_file, width=shae.width - 8),
    }
    with deadline(60):
        for what, data in cases.items():
            expect_format_error(data, what)


def test_corrupted_payloads_behind_a_valid_crc_never_crash(small_file: bytes) -> None:
    """Garbage that passes the checksum either decodes to an image of the right shape or is
    a FormatError; it never raises anything else."""
    shae = bitstream.unpack(small_file)
    rng = np.random.default_rng(SEED + 1)
    outcomes = {"decoded": 0, "FormatError": 0}
    with deadline(60):
        for trial in range(150):
            kind = SEGMENT_LATENT if trial % 3 else SEGMENT_ALPHA
            segments = []
            for seg in shae.segments:
                payload = bytearray(seg.payload)
                if seg.kind == kind:
                    for _ in range(1 + trial % 4):
                        bit = int(rng.integers(0, 8 * len(payload)))
                        payload[bit // 8] ^= 1 << (bit % 8)
                segments.append(Segment(seg.kind, bytes(payload)))
            data = _repacked(small_file, segments=tuple(segments))
            try:
                out = decompress(data)
            except FormatError:
                outcomes["FormatError"] += 1
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"trial {trial}: {type(exc).__name__}: {exc}")
            else:
                assert out.shape == (shae.height, shae.width, 4) and out.dtype == np.uint8
                outcomes["decoded"] += 1
    assert sum(outcomes.values()) == 150


# --------------------------------------------------------------------------------------------
# Invalid arguments


def test_invalid_quality_is_a_value_error(codec: Codec) -> None:
    image = synthetic_rgb(8, 8)
    top = codec.qualities[-1]
    for quality in (0, -1, top + 1, 1000, 2.0, 2.5, "3", True):
        with pytest.raises(ValueError):
            codec.encode(image, quality)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            compress(image, quality)  # type: ignore[arg-type]
    # numpy integers are integers
    assert bitstream.unpack(compress(image, np.int64(top))).level == top  # type: ignore[arg-type]


def test_invalid_rounding_is_a_value_error(codec: Codec) -> None:
    with pytest.raises(ValueError, match="rounding must be one of rd, nearest"):
        codec.encode(synthetic_rgb(8, 8), rounding="round")


def test_both_roundings_round_trip_at_every_level(codec: Codec) -> None:
    """Rate-distortion rounding changes only the encoder's choice: files decode to exactly the
    symbols chosen, the rate matches the prior's estimate, and each symbol is at most one center
    from the nearest one; it differs from nearest rounding only where the model has a tau."""
    image = synthetic_rgb(64, 80, seed=21)
    for quality in codec.qualities:
        nearest = codec.symbols_of(image, quality - 1, "nearest")
        rd = codec.symbols_of(image, quality - 1, "rd")
        assert np.all(np.abs(rd - nearest) <= 1)
        if codec.model.rd_tau[quality - 1] == 0:
            assert np.array_equal(rd, nearest)
        for rounding, symbols in (("nearest", nearest), ("rd", rd)):
            result = codec.encode(image, quality, rounding)
            check_rate(result)
            assert np.array_equal(codec.decode_symbols(bitstream.unpack(result.data)), symbols)
            assert decompress(result.data).shape == image.shape
    assert np.any(codec.model.rd_tau > 0), "the default model ships tuned rate-distortion rounding"


def test_rd_tau_of_reads_and_checks_model_json(tmp_path: Path) -> None:
    from imgcodec.zoo import ModelInfo, rd_tau_of

    def info(meta: dict) -> ModelInfo:
        return ModelInfo("m", tmp_path, "00" * 8, meta, {})

    assert np.array_equal(rd_tau_of(info({}), 3), np.zeros(3))
    assert np.array_equal(rd_tau_of(info({"rd_rounding": {"tau": [0, 0.001, 0.02]}}), 3), [0, 0.001, 0.02])
    for bad in ({"tau": [0.1, 0.2]}, {"tau": [0, -1, 0]}, {"tau": [0, float("nan"), 0]}, {"tau": "x"},
                {}, {"tau": [[0], [1], [2]]}, 5):
        with pytest.raises(ModelNotFoundError, match="model 'm'"):
            rd_tau_of(info({"rd_rounding": bad}), 3)


def test_rd_channel_weights_of_reads_and_checks_model_json(tmp_path: Path) -> None:
    from imgcodec.zoo import ModelInfo, rd_channel_weights_of

    def info(meta: dict) -> ModelInfo:
        return ModelInfo("m", tmp_path, "00" * 8, meta, {})

    assert np.array_equal(rd_channel_weights_of(info({}), 3), np.ones(3))
    assert np.array_equal(rd_channel_weights_of(info({"rd_rounding": {"tau": [0, 0, 0]}}), 3), np.ones(3))
    given = {"rd_rounding": {"tau": [0, 0, 0], "channel_weights": [0.5, 1, 2.5]}}
    assert np.array_equal(rd_channel_weights_of(info(given), 3), [0.5, 1, 2.5])
    for bad in ({"channel_weights": [1, 2]}, {"channel_weights": [1, 0, 1]}, {"channel_weights": [1, float("inf"), 1]},
                {"channel_weights": "x"}, {"channel_weights": [[1], [1], [1]]}, 5):
        with pytest.raises(ModelNotFoundError, match="model 'm'"):
            rd_channel_weights_of(info({"rd_rounding": bad}), 3)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8, 1), np.uint8),
        np.zeros((8, 8, 2), np.uint8),
        np.zeros((8, 8, 5), np.uint8),
        np.zeros((1, 8, 8, 3), np.uint8),
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8, 3), np.uint16),
        np.zeros((8, 8, 3), np.int8),
        np.zeros((8, 8, 3), bool),
        np.zeros((0, 8, 3), np.uint8),
        np.zeros((8, 0, 3), np.uint8),
        np.zeros((1, 16385, 3), np.uint8),
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
def test_wrong_image_is_an_image_input_error(codec: Codec, image: np.ndarray) -> None:
    with pytest.raises(ImageInputError) as exc_info:
        codec.encode(image, codec.qualities[0])
    assert "\n" not in str(exc_info.value)
    with pytest.raises(ImageInputError):
        compress(image)


# --------------------------------------------------------------------------------------------
# Determinism across processes and thread counts

_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np

    from imgcodec.bitstream import unpack
    from imgcodec.codec import Codec
    from imgcodec.zoo import find_model

    mode, threads, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    codec = Codec(find_model("shae-v8"), threads=threads)
    if mode == "encode":
        image = np.load(folder / "image.npy")
        quality = codec.qualities[-1]
        (folder / "image.shae").write_bytes(codec.encode(image, quality).data)
        np.save(folder / "encoder_symbols.npy", codec.symbols_of(image, codec.level_of(quality)))
    else:
        shae = unpack((folder / "image.shae").read_bytes())
        np.save(folder / f"symbols_{threads}.npy", codec.decode_symbols(shae))
        np.save(folder / f"pixels_{threads}.npy", codec.decode(shae))
    import onnxruntime  # noqa: F401  (the sessions really ran)
    print("ok", mode, threads)
    """
)


def _run_worker(tmp_path: Path, mode: str, threads: int) -> None:
    proc = subprocess.run([sys.executable, "-c", _WORKER, mode, str(threads), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", mode, str(threads)]


def test_determinism_across_processes_and_threads(tmp_path: Path) -> None:
    image = synthetic_rgb(96, 128, seed=7)
    np.save(tmp_path / "image.npy", image)
    _run_worker(tmp_path, "encode", 2)
    _run_worker(tmp_path, "decode", 1)
    _run_worker(tmp_path, "decode", 2)

    encoder_symbols = np.load(tmp_path / "encoder_symbols.npy")
    symbols_1 = np.load(tmp_path / "symbols_1.npy")
    symbols_2 = np.load(tmp_path / "symbols_2.npy")
    assert np.array_equal(symbols_1, encoder_symbols)
    assert np.array_equal(symbols_2, encoder_symbols)
    assert np.array_equal(symbols_1, symbols_2)

    pixels_1 = np.load(tmp_path / "pixels_1.npy")
    pixels_2 = np.load(tmp_path / "pixels_2.npy")
    assert pixels_1.shape == pixels_2.shape == image.shape
    identical = np.array_equal(pixels_1, pixels_2)
    max_diff = int(np.abs(pixels_1.astype(np.int16) - pixels_2.astype(np.int16)).max())
    print(f"decoded pixels with 1 and 2 threads: {'bit-identical' if identical else f'max abs diff {max_diff}'}")
    assert max_diff <= 1

    # This process (default thread count) decodes the same file to the same symbols, too.
    data = (tmp_path / "image.shae").read_bytes()
    assert np.array_equal(get_codec("shae-v8").decode_symbols(bitstream.unpack(data)), encoder_symbols)


# --------------------------------------------------------------------------------------------
# Tiled inference


def _tiled_codec() -> Codec:
    tiled = Codec(find_model("shae-v8"))
    tiled.runtime.tile = 4  # latents: 25 x 33 for 200 x 264 pixels -> 7 x 9 tiles
    tiled.runtime.margin = 8
    return tiled


def test_small_tiles_match_whole_image(codec: Codec) -> None:
    height, width = 200, 264
    image = synthetic_rgb(height, width, seed=11)
    tiled = _tiled_codec()
    # The default runtime codes this image in one piece.
    assert codec.runtime.tile + 2 * codec.runtime.margin >= max(-(-height // 8), -(-width // 8))

    quality = codec.qualities[-1]  # the largest gains: the most sensitive to float differences
    whole_shae = bitstream.unpack(codec.encode(image, quality).data)
    tiled_shae = bitstream.unpack(tiled.encode(image, quality).data)
    whole_symbols = codec.decode_symbols(whole_shae)
    tiled_symbols = codec.decode_symbols(tiled_shae)
    assert whole_symbols.shape == tiled_symbols.shape
    agreement = float(np.mean(whole_symbols == tiled_symbols))
    assert agreement > 0.999, f"only {agreement:.5f} of the symbols agree"

    whole = codec.decode(whole_shae)
    tiled_out = tiled.decode(tiled_shae)
    assert tiled_out.shape == whole.shape == image.shape
    difference = abs(psnr_rgb(image, whole) - psnr_rgb(image, tiled_out))
    assert math.isfinite(difference)
    assert difference < 0.1, f"PSNR differs by {difference:.3f} dB"


@pytest.mark.slow
def test_small_tiles_every_quality(codec: Codec) -> None:
    """Slow variant: every quality, analysis and synthesis tiling checked separately."""
    image = synthetic_rgb(200, 264, seed=12)
    tiled = _tiled_codec()
    for quality in codec.qualities:
        whole_symbols = codec.symbols_of(image, quality - 1)
        agreement = float(np.mean(whole_symbols == tiled.symbols_of(image, quality - 1)))
        assert agreement > 0.999, f"q{quality}: only {agreement:.5f} of the symbols agree"
        shae = bitstream.unpack(codec.encode(image, quality).data)
        # Tiled synthesis of the same symbols gives (almost) the same pixels.
        diff = np.abs(codec.decode(shae).astype(np.int16) - tiled.decode(shae).astype(np.int16))
        assert int(diff.max()) <= 1, f"q{quality}: tiled synthesis differs by up to {int(diff.max())}"


# --------------------------------------------------------------------------------------------
# Rate control and the 0-100 scale


def test_quality_of_percent_spans_the_levels(codec: Codec) -> None:
    qualities = codec.qualities
    assert codec.quality_of_percent(0) == qualities[0]
    assert codec.quality_of_percent(100) == qualities[-1]
    mapped = [codec.quality_of_percent(p) for p in range(101)]
    assert mapped == sorted(mapped) and set(mapped) == set(qualities)
    for bad in (-1, 100.5, "50", None, True):
        with pytest.raises(ValueError):
            codec.quality_of_percent(bad)  # type: ignore[arg-type]


def test_encode_to_size_hits_targets_between_levels(codec: Codec) -> None:
    """Between two levels' sizes the file lands within 3 % under the target, or is the lower
    level when that decodes better; never above the target."""
    image = synthetic_rgb(96, 128, noise=6.0)
    sizes = [len(codec.encode(image, q).data) for q in codec.qualities]
    hits = 0
    for low, high in zip(sizes[2:6], sizes[3:7]):
        target = (low + high) // 2
        result = codec.encode_to_size(image, target)
        assert len(result.data) <= target
        assert len(result.data) >= low
        hits += len(result.data) >= 0.97 * target
        assert np.array_equal(decompress(result.data), codec.decode(bitstream.unpack(result.data)))
    assert hits >= 1


# --------------------------------------------------------------------------------------------
# Decoding band by band, with bounded memory


def test_decode_rows_gives_the_decode_band_by_band(small_file: bytes) -> None:
    tiled = _tiled_codec()
    image = np.dstack([synthetic_rgb(200, 264, seed=5), alpha_with_holes(200, 264)])
    shae = bitstream.unpack(tiled.encode(image, 3).data)
    decoded = tiled.decode_rows(shae)
    bands = list(decoded.rows)
    assert decoded.count == len(bands) > 1
    tops = [top for top, _ in bands]
    assert tops == sorted(tops) and tops[0] == 0
    assert all(top + rows.shape[0] == nxt for (top, rows), nxt in zip(bands, tops[1:] + [200]))
    assert np.array_equal(decoded.alpha, image[..., 3])
    assert np.array_equal(np.concatenate([rows for _, rows in bands]), tiled.decode(shae)[..., :3])


def test_streamed_png_decode_memory_does_not_grow_with_the_image(tmp_path: Path) -> None:
    """decode_file to PNG streams band by band: five times the rows add less than the 3 bytes
    per added pixel a uint8 copy of the image would (the range decoder's symbols and index
    arrays take ~2; a float image would take 12). tracemalloc sees numpy's allocations, not
    onnxruntime's. PNG and TIFF (through Pillow, with the whole image) both hold the pixels
    decode() gives."""
    import tracemalloc

    from PIL import Image

    from imgcodec import batch, codec as codec_module

    tiled = _tiled_codec()
    tiled.runtime.tile = 16
    width = 320
    original = codec_module._codec_for
    codec_module._codec_for = lambda model_id, threads=None: tiled  # type: ignore[assignment]
    peaks: dict[tuple[str, int], int] = {}
    try:
        for height in (256, 1280):
            data = tiled.encode(synthetic_rgb(height, width, seed=9), 4).data
            source = tmp_path / f"{height}.shae"
            source.write_bytes(data)
            expected = tiled.decode(bitstream.unpack(data))  # also creates the ONNX session first
            for suffix in ("png", "tiff"):
                reports: list[tuple[int, int]] = []
                target = tmp_path / f"{height}.{suffix}"
                tracemalloc.start()
                batch.decode_file(str(source), str(target), batch.DecodeOptions(),
                                  lambda done, total: reports.append((done, total)))
                peaks[suffix, height] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                assert reports[-1][0] == reports[-1][1] == len(reports) > 1
                assert np.array_equal(np.asarray(Image.open(target)), expected)
    finally:
        codec_module._codec_for = original  # type: ignore[assignment]
    added_pixels = (1280 - 256) * width
    assert peaks["png", 1280] - peaks["png", 256] < 3.0 * added_pixels, peaks


def test_shae_v8_refuses_a_level_step(codec: Codec) -> None:
    """Positions between levels are shae-v9's; a shae-v8 file that asks for one is an error."""
    from imgcodec.bitstream import SEGMENT_LEVEL_STEP

    shae = bitstream.unpack(codec.encode(synthetic_rgb(16, 16), 2).data)
    forged = ShaeFile(shae.model_id, shae.level, shae.width, shae.height,
                      shae.segments + (Segment(SEGMENT_LEVEL_STEP, b"\x00\x80"),))
    with pytest.raises(FormatError, match="between two"):
        codec.decode(forged)


def test_encode_to_size_below_the_lowest_level_rounds_it_harder(codec: Codec) -> None:
    image = synthetic_rgb(96, 128, noise=6.0)
    lowest = len(codec.encode(image, 1).data)
    result = codec.encode_to_size(image, int(0.9 * lowest))
    assert result.quality == 1 and 0.85 * lowest <= len(result.data) <= 0.9 * lowest
    assert codec.decode(bitstream.unpack(result.data)).shape == image.shape
    assert len(codec.encode_to_size(image, 10).data) == lowest  # nothing fits: the lowest level as is


def test_get_codec_hands_its_threads_to_onnx_runtime() -> None:
    assert get_codec(None, 1).runtime.threads == 1
    assert get_codec(None).runtime.threads is None
    assert get_codec(None, 1) is get_codec(None, 1)  # cached per thread count
