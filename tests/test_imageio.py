"""Tests for image reading/writing: colour modes, EXIF, size guards, atomic writes, alpha coding."""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imgcodec import imageio
from imgcodec.errors import FormatError, ImageInputError, OutputExistsError, ShaecError
from imgcodec.imageio import (
    LoadedImage,
    atomic_write,
    decode_alpha,
    encode_alpha,
    encode_image_bytes,
    load_image,
    save_image,
)

RNG_SEED = 12345


def rgb_array(h: int = 12, w: int = 17, seed: int = RNG_SEED) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(im: Image.Image, path: Path, **kwargs: object) -> Path:
    im.save(path, **kwargs)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 2, idat: bytes = b"") -> bytes:
    """A PNG whose IHDR claims the given size; the pixel data (if any) is whatever is given."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(idat))
        + png_chunk(b"IEND", b"")
    )


def error_text(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


# --- load_image: sources ----------------------------------------------------------------------


def test_rgb_png_round_trip(tmp_path: Path) -> None:
    rgb = rgb_array()
    path = save(Image.fromarray(rgb), tmp_path / "a.png")
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (12, 17, 3)
    assert np.array_equal(loaded.rgb, rgb)
    assert loaded.alpha is None
    assert loaded.notes == []


def test_sources_str_bytes_and_streams(tmp_path: Path) -> None:
    rgb = rgb_array()
    path = save(Image.fromarray(rgb), tmp_path / "a.png")
    data = path.read_bytes()

    class NonSeekable(io.RawIOBase):
        def __init__(self, payload: bytes) -> None:
            self._inner = io.BytesIO(payload)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            chunk = self._inner.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    stream = io.BytesIO(data)
    for source in (str(path), path, data, stream, io.BufferedReader(NonSeekable(data))):
        assert np.array_equal(load_image(source).rgb, rgb)
    assert not stream.closed  # a caller's stream is left open


@pytest.mark.parametrize("fmt,ext", [("BMP", "bmp"), ("PPM", "ppm"), ("TIFF", "tif"), ("WEBP", "webp")])
def test_lossless_formats(tmp_path: Path, fmt: str, ext: str) -> None:
    rgb = rgb_array()
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    path = save(Image.fromarray(rgb), tmp_path / f"a.{ext}", format=fmt, **kwargs)
    assert np.array_equal(load_image(path).rgb, rgb)


def test_jpeg(tmp_path: Path) -> None:
    path = save(Image.fromarray(rgb_array()), tmp_path / "a.jpg")
    loaded = load_image(path)
    assert loaded.rgb.shape == (12, 17, 3) and loaded.alpha is None


# --- load_image: colour modes -----------------------------------------------------------------


def test_grayscale(tmp_path: Path) -> None:
    gray = rgb_array()[:, :, 0]
    loaded = load_image(save(Image.fromarray(gray, mode="L"), tmp_path / "g.png"))
    assert loaded.rgb.shape == (12, 17, 3)
    for c in range(3):
        assert np.array_equal(loaded.rgb[:, :, c], gray)
    assert loaded.alpha is None
    assert any("grayscale" in n for n in loaded.notes)


def test_one_bit(tmp_path: Path) -> None:
    mask = rgb_array()[:, :, 0] > 128
    im = Image.fromarray(mask.astype(np.uint8) * 255, mode="L").convert("1", dither=Image.Dither.NONE)
    loaded = load_image(save(im, tmp_path / "b.png"))
    assert np.array_equal(loaded.rgb[:, :, 1], np.where(mask, 255, 0))
    assert any("1-bit" in n for n in loaded.notes)


def test_palette(tmp_path: Path) -> None:
    rgb = rgb_array()
    im = Image.fromarray(rgb).quantize(16)
    expected = np.array(im.convert("RGB"))
    loaded = load_image(save(im, tmp_path / "p.png"))
    assert np.array_equal(loaded.rgb, expected)
    assert loaded.alpha is None
    assert any("palette" in n for n in loaded.notes)


def test_palette_with_transparency(tmp_path: Path) -> None:
    indices = np.zeros((6, 9), dtype=np.uint8)
    indices[2:4, 3:7] = 1
    im = Image.fromarray(indices, mode="P")
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    loaded = load_image(save(im, tmp_path / "t.png", transparency=0))
    assert loaded.alpha is not None
    assert np.array_equal(loaded.alpha, np.where(indices == 1, 255, 0))
    assert tuple(loaded.rgb[2, 3]) == (200, 100, 50)
    assert any("transparency" in n for n in loaded.notes)


def test_palette_with_transparency_gif(tmp_path: Path) -> None:
    indices = np.ones((5, 5), dtype=np.uint8)
    indices[0, 0] = 0
    im = Image.fromarray(indices, mode="P")
    im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    loaded = load_image(save(im, tmp_path / "t.gif", transparency=0))
    assert loaded.alpha is not None and loaded.alpha[0, 0] == 0 and loaded.alpha[1, 1] == 255


def test_16bit_grayscale(tmp_path: Path) -> None:
    values = np.array([[0, 128, 257, 32896], [65535, 65407, 1000, 50000]], dtype=np.uint16)
    im = Image.fromarray(values)
    assert im.mode == "I;16"
    loaded = load_image(save(im, tmp_path / "g16.png"))
    expected = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    assert np.array_equal(loaded.rgb[:, :, 0], expected)
    assert loaded.rgb[1, 0, 0] == 255 and loaded.rgb[0, 0, 0] == 0
    assert "converted 16-bit grayscale to 8-bit RGB" in loaded.notes


def test_16bit_rgb_png_gets_a_note() -> None:
    raw = b"".join(b"\x00" + b"\xab\xcd" * 3 * 4 for _ in range(2))
    ihdr = struct.pack(">IIBBBBB", 4, 2, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    loaded = load_image(data)
    assert loaded.rgb.shape == (2, 4, 3) and int(loaded.rgb[0, 0, 0]) in (0xAB, 0xAC)
    assert any("16-bit" in n for n in loaded.notes)


def test_32bit_integer_and_float_grayscale(tmp_path: Path) -> None:
    ints = np.array([[0, 65535], [-5, 70000]], dtype=np.int32)
    loaded = load_image(save(Image.fromarray(ints, mode="I"), tmp_path / "i.tif"))
    assert loaded.rgb[:, :, 0].tolist() == [[0, 255], [0, 255]]
    floats = np.array([[0.0, 1.0], [0.5, 0.25]], dtype=np.float32)
    loaded = load_image(save(Image.fromarray(floats, mode="F"), tmp_path / "f.tif"))
    assert loaded.rgb[:, :, 0].tolist() == [[0, 255], [128, 64]]
    assert any("floating-point" in n for n in loaded.notes)


def test_rgba_with_real_alpha(tmp_path: Path) -> None:
    rgb = rgb_array()
    alpha = np.random.default_rng(3).integers(0, 256, (12, 17), dtype=np.uint8)
    loaded = load_image(save(Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA"), tmp_path / "a.png"))
    assert np.array_equal(loaded.rgb, rgb)
    assert loaded.alpha is not None and np.array_equal(loaded.alpha, alpha)
    payload = encode_alpha(loaded.alpha)
    assert np.array_equal(decode_alpha(payload, 17, 12), alpha)


def test_rgba_fully_opaque_has_no_alpha(tmp_path: Path) -> None:
    rgb = rgb_array()
    alpha = np.full((12, 17), 255, dtype=np.uint8)
    loaded = load_image(save(Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA"), tmp_path / "o.png"))
    assert loaded.alpha is None
    assert np.array_equal(loaded.rgb, rgb)


def test_grayscale_with_alpha(tmp_path: Path) -> None:
    la = np.dstack([rgb_array()[:, :, 0], np.arange(12 * 17, dtype=np.uint8).reshape(12, 17)])
    loaded = load_image(save(Image.fromarray(la, mode="LA"), tmp_path / "la.png"))
    assert loaded.alpha is not None and np.array_equal(loaded.alpha, la[:, :, 1])
    assert np.array_equal(loaded.rgb[:, :, 2], la[:, :, 0])


def test_cmyk(tmp_path: Path) -> None:
    im = Image.new("CMYK", (7, 5), (0, 255, 255, 0))  # red
    loaded = load_image(save(im, tmp_path / "c.tif"))
    assert tuple(loaded.rgb[0, 0]) == (255, 0, 0)
    assert any("CMYK" in n for n in loaded.notes)


def test_first_frame_of_animation(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    loaded = load_image(path)
    assert tuple(loaded.rgb[0, 0]) == (255, 0, 0)
    assert any("first frame" in n for n in loaded.notes)


def test_exif_orientation(tmp_path: Path) -> None:
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)  # 30 wide, 20 high
    rgb[:, :15] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(Image.fromarray(rgb), tmp_path / "o.jpg", exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.rgb.shape == (30, 20, 3)
    # After a clockwise turn the former left half is the top half.
    assert loaded.rgb[:10].mean() > 200 and loaded.rgb[-10:].mean() < 50
    assert any("EXIF orientation" in n for n in loaded.notes)


def test_no_note_without_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 1
    loaded = load_image(save(Image.fromarray(rgb_array()), tmp_path / "o.jpg", exif=exif))
    assert loaded.rgb.shape == (12, 17, 3)
    assert not any("EXIF" in n for n in loaded.notes)


def test_colour_profile_notes(tmp_path: Path) -> None:
    ImageCms = pytest.importorskip("PIL.ImageCms")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    other = ImageCms.ImageCmsProfile(ImageCms.createProfile("XYZ")).tobytes()
    im = Image.fromarray(rgb_array())
    assert load_image(save(im, tmp_path / "s.png", icc_profile=srgb)).notes == []
    notes = load_image(save(im, tmp_path / "x.png", icc_profile=other)).notes
    assert any("colour profile" in n and "XYZ" in n for n in notes)


def test_pillow_warnings_become_notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    original = imageio._to_rgb_alpha

    def warning_conversion(im: Image.Image, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        warnings.warn("Possibly corrupt EXIF data", UserWarning)
        return original(im, notes)

    monkeypatch.setattr(imageio, "_to_rgb_alpha", warning_conversion)
    path = save(Image.fromarray(rgb_array()), tmp_path / "a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape
        loaded = load_image(path)
    assert loaded.notes == ["warning while reading: Possibly corrupt EXIF data"]


# --- load_image: errors -----------------------------------------------------------------------


def test_header_claiming_a_huge_side_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_with_header(20000, 100))
    with pytest.raises(ImageInputError) as exc:
        load_image(path)
    text = error_text(exc)
    assert "20000x100 pixels" in text and "largest supported side is 16384" in text and "big.png" in text


def test_header_past_pillows_bomb_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_header(16000, 16000))
    with pytest.raises(ImageInputError) as exc:
        load_image(path)
    assert "too large" in error_text(exc)


def test_pixel_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imageio, "MAX_PIXELS", 100)
    with pytest.raises(ImageInputError) as exc:
        load_image(png_with_header(11, 10))
    assert "at most 100 pixels" in error_text(exc)


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("hello, I am text\n")
    with pytest.raises(ImageInputError) as exc:
        load_image(path)
    assert error_text(exc).startswith(f"cannot read {str(path)!r} as an image")


def test_empty_and_garbage_bytes() -> None:
    for data in (b"", b"\x00" * 100, b"\x89PNG\r\n\x1a\n" + b"\xff" * 50):
        with pytest.raises(ImageInputError):
            load_image(data)


def test_truncated_image(tmp_path: Path) -> None:
    data = (save(Image.fromarray(rgb_array(64, 64)), tmp_path / "a.png")).read_bytes()
    # Cuts inside the header or the pixel data. (Pillow accepts a PNG cut after its pixel
    # data, e.g. without IEND; nothing is lost then.)
    for cut in (0, 7, 20, 40, len(data) // 2, len(data) - 200):
        with pytest.raises(ImageInputError) as exc:
            load_image(data[:cut])
        error_text(exc)


def test_corrupted_pixel_data() -> None:
    with pytest.raises(ImageInputError):
        load_image(png_with_header(8, 8, idat=b"\x05" * 10))  # bad filter type, too short


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError) as exc:
        load_image(tmp_path / "nope.png")
    assert "no such file" in error_text(exc) and "nope.png" in str(exc.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError):
        load_image(tmp_path)


# --- saving -------------------------------------------------------------------------------------


def test_save_png_with_alpha_is_exact(tmp_path: Path) -> None:
    rgb = rgb_array()
    alpha = np.random.default_rng(9).integers(0, 256, (12, 17), dtype=np.uint8)
    save_image(rgb, alpha, tmp_path / "out.png")
    loaded = load_image(tmp_path / "out.png")
    assert np.array_equal(loaded.rgb, rgb) and np.array_equal(loaded.alpha, alpha)


def test_save_jpeg_drops_alpha(tmp_path: Path) -> None:
    alpha = np.zeros((12, 17), dtype=np.uint8)
    save_image(rgb_array(), alpha, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (17, 12)


def test_save_webp_with_alpha_is_lossless(tmp_path: Path) -> None:
    rgb = rgb_array()
    alpha = np.full((12, 17), 128, dtype=np.uint8)
    save_image(rgb, alpha, tmp_path / "out.webp")
    loaded = load_image(tmp_path / "out.webp")
    assert np.array_equal(loaded.alpha, alpha) and np.array_equal(loaded.rgb, rgb)


def test_save_format_choice(tmp_path: Path) -> None:
    save_image(rgb_array(), None, tmp_path / "noext")
    with Image.open(tmp_path / "noext") as im:
        assert im.format == "PNG"
    save_image(rgb_array(), None, tmp_path / "named.dat", fmt="bmp")
    with Image.open(tmp_path / "named.dat") as im:
        assert im.format == "BMP"
    with pytest.raises(ShaecError):
        save_image(rgb_array(), None, tmp_path / "out.notaformat")
    assert not (tmp_path / "out.notaformat").exists()


def test_save_refuses_overwrite(tmp_path: Path) -> None:
    dest = tmp_path / "out.png"
    dest.write_bytes(b"old")
    with pytest.raises(OutputExistsError) as exc:
        save_image(rgb_array(), None, dest)
    assert error_text(exc) == f"{str(dest)!r} exists; use -f/--force to overwrite"
    assert dest.read_bytes() == b"old"
    save_image(rgb_array(), None, dest, force=True)
    assert np.array_equal(load_image(dest).rgb, rgb_array())


def test_encode_image_bytes() -> None:
    rgb = rgb_array()
    alpha = np.full((12, 17), 7, dtype=np.uint8)
    for fmt in ("png", "PNG", ".png"):
        loaded = load_image(encode_image_bytes(rgb, alpha, fmt))
        assert np.array_equal(loaded.rgb, rgb) and np.array_equal(loaded.alpha, alpha)
    with Image.open(io.BytesIO(encode_image_bytes(rgb, alpha, "jpg"))) as im:
        assert im.format == "JPEG"
    with pytest.raises(ShaecError):
        encode_image_bytes(rgb, None, "nope")


def test_bad_planes_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        encode_image_bytes(np.zeros((4, 4), dtype=np.uint8), None, "png")
    with pytest.raises(ValueError):
        encode_image_bytes(np.zeros((4, 4, 3), dtype=np.uint8), np.zeros((3, 4), dtype=np.uint8), "png")


# --- atomic_write -----------------------------------------------------------------------------


def test_atomic_write_creates(tmp_path: Path) -> None:
    atomic_write(tmp_path / "x.shae", b"data")
    assert (tmp_path / "x.shae").read_bytes() == b"data"
    assert os.listdir(tmp_path) == ["x.shae"]


def test_atomic_write_refuses_overwrite_without_force(tmp_path: Path) -> None:
    dest = tmp_path / "x.shae"
    dest.write_bytes(b"old")
    with pytest.raises(OutputExistsError) as exc:
        atomic_write(dest, b"new")
    assert "exists; use -f/--force to overwrite" in error_text(exc)
    assert dest.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.shae"]


def test_atomic_write_overwrites_with_force(tmp_path: Path) -> None:
    dest = tmp_path / "x.shae"
    dest.write_bytes(b"old")
    atomic_write(dest, b"new", force=True)
    assert dest.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["x.shae"]


def test_atomic_write_failure_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "x.shae"
    dest.write_bytes(b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ShaecError) as exc:
        atomic_write(dest, b"new", force=True)
    assert "No space left on device" in error_text(exc)
    assert dest.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.shae"]


def test_atomic_write_interrupt_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.shae", b"new")
    assert os.listdir(tmp_path) == []


def test_atomic_write_race_with_another_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "x.shae"
    real_link = os.link

    def racing_link(src: object, dst: object) -> None:
        Path(dst).write_bytes(b"theirs")  # someone else creates dest just before us
        real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(OutputExistsError):
        atomic_write(dest, b"ours")
    assert dest.read_bytes() == b"theirs"
    assert os.listdir(tmp_path) == ["x.shae"]


def test_atomic_write_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    atomic_write(tmp_path / "x.shae", b"data")
    assert (tmp_path / "x.shae").read_bytes() == b"data"
    assert os.listdir(tmp_path) == ["x.shae"]


def test_atomic_write_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ShaecError) as exc:
        atomic_write(tmp_path / "missing" / "x.shae", b"data")
    assert "cannot write" in error_text(exc)


def test_atomic_write_rejects_stdout_marker() -> None:
    with pytest.raises(ValueError):
        atomic_write("-", b"data")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_atomic_write_uses_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "x.shae", b"data")
    finally:
        os.umask(umask)
    assert (tmp_path / "x.shae").stat().st_mode & 0o777 == 0o644


# --- alpha coding -------------------------------------------------------------------------------


def test_alpha_binary_mask_round_trip_is_compact() -> None:
    mask = np.zeros((64, 80), dtype=np.uint8)
    mask[10:50, 20:70] = 255
    payload = encode_alpha(mask)
    assert len(payload) < 200
    assert np.array_equal(decode_alpha(payload, 80, 64), mask)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    binary=st.booleans(),
)
def test_alpha_round_trip_property(h: int, w: int, seed: int, binary: bool) -> None:
    rng = np.random.default_rng(seed)
    alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
    if binary:
        alpha = np.where(alpha > 127, 255, 0).astype(np.uint8)
    assert np.array_equal(decode_alpha(encode_alpha(alpha), w, h), alpha)


def test_decode_alpha_rejects_garbage() -> None:
    good = encode_alpha(np.arange(30, dtype=np.uint8).reshape(5, 6))
    bad_inputs = [
        b"",
        b"garbage",
        good[:-20],
        good[:40],
        good[:8] + b"\x00" * (len(good) - 8),
        encode_image_bytes(rgb_array(5, 6), None, "png"),  # colour, not greyscale
    ]
    for payload in bad_inputs:
        with pytest.raises(FormatError):
            decode_alpha(payload, 6, 5)


def test_decode_alpha_rejects_wrong_size() -> None:
    good = encode_alpha(np.arange(30, dtype=np.uint8).reshape(5, 6))
    with pytest.raises(FormatError) as exc:
        decode_alpha(good, 5, 6)
    assert "6x5" in error_text(exc)


def test_decode_alpha_rejects_huge_claims() -> None:
    with pytest.raises(FormatError):
        decode_alpha(png_with_header(60000, 60000, colour_type=0), 60000, 60000)
    with pytest.raises(FormatError):
        decode_alpha(png_with_header(16000, 16000, colour_type=0), 16000, 16000)


def test_encode_alpha_validates() -> None:
    with pytest.raises(ValueError):
        encode_alpha(np.zeros((2, 2, 1), dtype=np.uint8))
    with pytest.raises(ValueError):
        encode_alpha(np.zeros((2, 2), dtype=np.uint16))


def test_sigterm_during_an_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The console script turns SIGTERM into SystemExit, so the write's cleanup runs."""
    import signal
    import subprocess
    import sys
    import time

    code = f"""
import os, time
from imgcodec.cli import exit_on_sigterm
from imgcodec.imageio import atomic_write
exit_on_sigterm()
real_fsync = os.fsync
def slow_fsync(fd):
    print("writing", flush=True)
    # Short sleeps: a SIGTERM that lands after the print but before the sleep starts does not
    # interrupt the sleep; Python runs the handler only when the sleep returns.
    for _ in range(600):
        time.sleep(0.05)
os.fsync = slow_fsync
atomic_write({str(tmp_path / "out.png")!r}, b"x" * 1000)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the write is under way
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    time.sleep(0.1)
    assert list(tmp_path.iterdir()) == []
