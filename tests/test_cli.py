"""Tests for the ``shaec`` command line (imgcodec.cli), run in-process with click's CliRunner.

The installed model is used as it is; its id and quality range are read from it, never
hard-coded.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from imgcodec import __version__, bitstream
from imgcodec.bitstream import SEGMENT_ALPHA, SEGMENT_LATENT, ShaeFile
from imgcodec.cli import main
from imgcodec.codec import decompress, get_codec

SEED = 4321


# --------------------------------------------------------------------------------------------
# Helpers

SAMPLE_PHOTO = Path(__file__).resolve().parent.parent / "samples" / "coffee.png"


def synthetic_rgb(height: int, width: int, seed: int = SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 60 + 140 * x / max(width - 1, 1) + 20 * np.sin(y / 7.0)
    g = 80 + 100 * y / max(height - 1, 1) + 20 * np.cos((x + y) / 9.0)
    b = 150 + 40 * np.sin(np.hypot(x - width / 2, y - height / 2) / 5.0)
    image = np.stack([r, g, b], axis=-1) + rng.normal(0.0, 2.0, (height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def alpha_with_holes(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    alpha = np.rint(255 * x / max(width - 1, 1))
    alpha[np.hypot(y - height / 2, x - width / 3) < min(height, width) / 4] = 0
    alpha[:2] = 255
    return alpha.astype(np.uint8)


def write_png(path: Path, image: np.ndarray | Image.Image) -> Path:
    im = image if isinstance(image, Image.Image) else Image.fromarray(image)
    im.save(path, format="PNG")
    return path


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def run(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output!r} {result.exception!r}"
    assert "Traceback" not in result.output


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit status 1, a single 'Error: ...' line, no traceback, no uncaught exception."""
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert result.exit_code == 1, f"exit {result.exit_code}: {result.output!r}"
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="module")
def qualities() -> list[int]:
    return get_codec().qualities


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return write_png(tmp_path / "photo.png", synthetic_rgb(40, 56))


# --------------------------------------------------------------------------------------------
# encode / decode


def test_encode_decode_default_names(photo: Path) -> None:
    original_png = photo.read_bytes()
    assert_ok(run("encode", str(photo)))
    shae_path = photo.with_suffix(".shae")
    data = shae_path.read_bytes()
    shae = bitstream.unpack(data)
    assert (shae.width, shae.height) == (56, 40)
    assert shae.level == get_codec().info.default_quality

    # photo.shae -> photo.decoded.png: never photo.png, the original.
    assert_ok(run("decode", str(shae_path)))
    decoded_path = photo.parent / "photo.decoded.png"
    with Image.open(decoded_path) as im:
        assert im.mode == "RGB" and im.size == (56, 40)
        decoded = np.array(im)
    assert np.array_equal(decoded, decompress(data))
    assert photo.read_bytes() == original_png
    assert not [p for p in photo.parent.iterdir() if p.name.startswith(".")], "temporary file left behind"

    # Decoding or encoding again is refused without -f.
    assert "use -f" in assert_one_line_error(run("decode", str(shae_path)), "exists")
    assert_one_line_error(run("encode", str(photo)), "exists")
    assert shae_path.read_bytes() == data

    # Asked to write over the original: refused, and -f is not what the message suggests.
    line = assert_one_line_error(run("decode", str(shae_path), "-o", str(photo)), "may be the original")
    assert "-f" not in line and photo.read_bytes() == original_png

    # -f overwrites what the user names.
    assert_ok(run("decode", "-f", str(shae_path)))
    other = photo.parent / "other.png"
    assert_ok(run("decode", str(shae_path), "-o", str(other)))
    assert np.array_equal(np.array(Image.open(other)), decoded)
    assert_ok(run("encode", "-f", str(photo)))


def test_outputs_that_would_mislead_or_destroy_are_refused(photo: Path) -> None:
    assert_one_line_error(run("encode", str(photo), "-o", str(photo.parent / "out.jpg")), "must end in .shae")
    assert not (photo.parent / "out.jpg").exists()
    assert_ok(run("encode", str(photo)))
    shae_path = photo.with_suffix(".shae")
    assert_one_line_error(run("decode", str(shae_path), "-o", str(shae_path), "-f"), "is the input")
    assert shae_path.exists() and photo.exists()


def test_one_summary_line_per_file_and_quiet(photo: Path) -> None:
    result = run("encode", str(photo))
    assert result.exit_code == 0
    assert re.fullmatch(r".*photo\.png -> .*photo\.shae  \d+\.\d KB  \d+\.\d\d bpp  q\d+\n", result.stderr)
    quiet = run("decode", "--quiet", str(photo.with_suffix(".shae")))
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_encode_to_stdout(photo: Path) -> None:
    result = run("encode", str(photo), "-o", "-")
    assert_ok(result)
    data = result.stdout_bytes
    assert data.startswith(bitstream.MAGIC)
    assert not photo.with_suffix(".shae").exists()
    assert decompress(data).shape == (40, 56, 3)


def test_encode_from_stdin_to_stdout() -> None:
    result = run("encode", "-", input=png_bytes(synthetic_rgb(24, 32)))
    assert_ok(result)
    assert bitstream.unpack(result.stdout_bytes).width == 32


@pytest.mark.parametrize("args", [["decode", "-"], ["decode", "-", "-o", "-"]])
def test_decode_stdin_to_stdout(photo: Path, args: list[str]) -> None:
    data = run("encode", str(photo), "-o", "-").stdout_bytes
    result = run(*args, input=data)
    assert_ok(result)
    assert result.stdout_bytes.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(result.stdout_bytes)) as im:
        assert im.size == (56, 40)
        assert np.array_equal(np.array(im.convert("RGB")), decompress(data))


def test_quality_option(photo: Path, tmp_path: Path, qualities: list[int]) -> None:
    for quality in (qualities[0], qualities[-1]):
        out = tmp_path / f"q{quality}.shae"
        assert_ok(run("encode", str(photo), "-q", str(quality), "-o", str(out)))
        assert bitstream.unpack(out.read_bytes()).level == quality
    for bad in ("0", "-1", str(qualities[-1] + 1), "99", "high", "2.5"):
        result = run("encode", str(photo), "-q", bad, "-o", str(tmp_path / "bad.shae"))
        assert result.exit_code == 2, (bad, result.output)
        assert "Traceback" not in result.output
        assert "quality" in result.output.lower() or "-q" in result.output
        assert not (tmp_path / "bad.shae").exists()


def test_rounding_choices_are_the_codecs() -> None:
    from imgcodec.codec import ROUNDINGS

    for command in ("encode", "roundtrip"):
        (param,) = [p for p in main.commands[command].params if p.name == "rounding"]
        assert tuple(param.type.choices) == ROUNDINGS and param.default == ROUNDINGS[0]


def test_rounding_option(photo: Path, tmp_path: Path) -> None:
    for rounding in ("rd", "nearest"):
        out = tmp_path / f"{rounding}.shae"
        assert_ok(run("encode", str(photo), "--rounding", rounding, "-o", str(out)))
        assert decompress(out.read_bytes()).shape == (40, 56, 3)
    result = run("encode", str(photo), "--rounding", "round", "-o", str(tmp_path / "bad.shae"))
    assert result.exit_code == 2 and "Traceback" not in result.output and "--rounding" in result.output
    assert not (tmp_path / "bad.shae").exists()
    result = run("roundtrip", str(photo), "--rounding", "nearest")
    assert_ok(result)
    assert "PSNR" in result.output


def test_several_inputs_out_dir_progress(tmp_path: Path) -> None:
    sources = [write_png(tmp_path / f"img{i}.png", synthetic_rgb(24 + 8 * i, 32, seed=i)) for i in range(3)]
    out_dir = tmp_path / "coded" / "nested"
    result = run("encode", *map(str, sources), "--out-dir", str(out_dir))
    assert_ok(result)
    assert "encoding" in result.stderr  # the progress bar's label
    coded = sorted(out_dir.glob("*.shae"))
    assert [p.name for p in coded] == ["img0.shae", "img1.shae", "img2.shae"]

    # -o with several inputs is a usage error.
    assert run("encode", *map(str, sources), "-o", str(tmp_path / "x.shae")).exit_code == 2

    decoded_dir = tmp_path / "decoded"
    result = run("decode", *map(str, coded), "--out-dir", str(decoded_dir))
    assert_ok(result)
    assert "decoding" in result.stderr
    for i in range(3):
        with Image.open(decoded_dir / f"img{i}.png") as im:
            assert im.size == (32, 24 + 8 * i)


def test_batch_encode_with_one_bad_input(tmp_path: Path) -> None:
    good = [write_png(tmp_path / f"ok{i}.png", synthetic_rgb(16, 16, seed=i)) for i in range(2)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture at all")
    result = run("encode", str(good[0]), str(bad), str(good[1]), "--out-dir", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "1 of 3" in result.output and "bad.png" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok0.shae", "ok1.shae"]


def test_info(photo: Path, tmp_path: Path) -> None:
    assert_ok(run("encode", str(photo)))
    data = photo.with_suffix(".shae").read_bytes()
    result = run("info", str(photo.with_suffix(".shae")))
    assert_ok(result)
    text = result.output
    model = get_codec().info
    assert model.model_id in text and model.name in text
    assert "56x40" in text
    assert f"{len(data)}" in text and "bytes" in text
    assert f"{8 * len(data) / (56 * 40):.4f} bpp" in text
    latent = bitstream.unpack(data).segment(SEGMENT_LATENT)
    assert f"latent: {len(latent.payload)} bytes" in text

    # A file with alpha lists its alpha segment; a file for another model says so.
    rgba = write_png(tmp_path / "rgba.png", np.dstack([synthetic_rgb(20, 24), alpha_with_holes(20, 24)]))
    assert_ok(run("encode", str(rgba)))
    rgba_data = rgba.with_suffix(".shae").read_bytes()
    alpha = bitstream.unpack(rgba_data).segment(SEGMENT_ALPHA)
    assert f"alpha: {len(alpha.payload)} bytes" in run("info", str(rgba.with_suffix(".shae"))).output

    shae = bitstream.unpack(data)
    other_id = bytes(b ^ 0xFF for b in shae.model_id)
    foreign = tmp_path / "foreign.shae"
    foreign.write_bytes(bitstream.pack(ShaeFile(other_id, shae.level, shae.width, shae.height, shae.segments)))
    result = run("info", str(foreign))
    assert_ok(result)
    assert other_id.hex() in result.output and "not installed" in result.output
    # ... and decoding it names the missing weights in one line.
    assert_one_line_error(run("decode", str(foreign)), other_id.hex())


# --------------------------------------------------------------------------------------------
# Input colour modes


def _round_trip(tmp_path: Path, source: Path, *extra: str) -> tuple[Result, np.ndarray]:
    shae = tmp_path / (source.stem + ".shae")
    out = tmp_path / (source.stem + ".decoded.png")
    encoded = run("encode", "-v", str(source), "-o", str(shae), *extra)
    assert_ok(encoded)
    assert_ok(run("decode", str(shae), "-o", str(out)))
    with Image.open(out) as im:
        return encoded, np.array(im)


def test_grayscale_input(tmp_path: Path) -> None:
    gray = synthetic_rgb(30, 40)[..., 1]
    encoded, decoded = _round_trip(tmp_path, write_png(tmp_path / "gray.png", Image.fromarray(gray, mode="L")))
    assert decoded.shape == (30, 40)  # greyscale stays greyscale (mode L)
    assert np.abs(decoded.astype(int) - gray).mean() < 12
    assert "note:" in encoded.stderr and "grayscale" in encoded.stderr
    assert bitstream.unpack((tmp_path / "gray.shae").read_bytes()).gray


def test_icc_exif_and_xmp_are_kept_unless_stripped(tmp_path: Path) -> None:
    from PIL import ImageCms
    from PIL.PngImagePlugin import PngInfo

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # not sRGB
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    source = tmp_path / "meta.png"
    Image.fromarray(synthetic_rgb(32, 48)).save(source, icc_profile=icc, exif=exif.tobytes(), pnginfo=info)
    encoded, _ = _round_trip(tmp_path, source)
    assert "kept the embedded colour profile" in encoded.stderr
    shae = bitstream.unpack((tmp_path / "meta.shae").read_bytes())
    assert [name for name, _ in bitstream.describe(shae)] == ["latent", "icc", "exif", "xmp"]
    with Image.open(tmp_path / "meta.decoded.png") as im:
        assert im.info["icc_profile"] == icc
        assert im.getexif()[0x010F] == "TestCam"
        assert "adobe:ns:meta" in (im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or b"").__str__()
    assert_ok(run("encode", str(source), "--strip", "-o", str(tmp_path / "stripped.shae")))
    stripped = bitstream.unpack((tmp_path / "stripped.shae").read_bytes())
    assert [name for name, _ in bitstream.describe(stripped)] == ["latent"]
    assert (tmp_path / "stripped.shae").read_bytes()[4] == 1  # no metadata: a version-1 file


def test_palette_input(tmp_path: Path) -> None:
    im = Image.fromarray(synthetic_rgb(30, 40)).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    assert im.mode == "P"
    encoded, decoded = _round_trip(tmp_path, write_png(tmp_path / "palette.png", im))
    assert decoded.shape == (30, 40, 3)
    assert "palette" in encoded.stderr


def test_16bit_grayscale_input(tmp_path: Path) -> None:
    wide = (synthetic_rgb(30, 40)[..., 0].astype(np.uint16) * 257 + 100).astype(np.uint16)
    source = write_png(tmp_path / "deep.png", Image.fromarray(wide))
    with Image.open(source) as im:
        assert im.mode in ("I;16", "I")  # a real 16-bit PNG
    encoded, decoded = _round_trip(tmp_path, source)
    assert decoded.shape == (30, 40)  # 8-bit greyscale back
    assert "note:" in encoded.stderr and "16-bit" in encoded.stderr


def test_rgba_input_alpha_is_exact(tmp_path: Path) -> None:
    alpha = alpha_with_holes(36, 44)
    source = write_png(tmp_path / "rgba.png", np.dstack([synthetic_rgb(36, 44), alpha]))
    encoded, decoded = _round_trip(tmp_path, source)
    assert decoded.shape == (36, 44, 4)
    assert np.array_equal(decoded[..., 3], alpha)
    assert "alpha" in encoded.stderr


def test_opaque_rgba_input_decodes_to_rgb(tmp_path: Path) -> None:
    image = np.dstack([synthetic_rgb(20, 20), np.full((20, 20), 255, np.uint8)])
    _, decoded = _round_trip(tmp_path, write_png(tmp_path / "opaque.png", image))
    assert decoded.shape == (20, 20, 3)


# --------------------------------------------------------------------------------------------
# Bad inputs: exit 1 and one line


def test_bad_inputs_are_one_line_errors(tmp_path: Path, photo: Path) -> None:
    assert_ok(run("encode", str(photo)))
    good = photo.with_suffix(".shae").read_bytes()

    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not an image\n")
    truncated = tmp_path / "truncated.shae"
    truncated.write_bytes(good[: len(good) // 2])
    random_bytes = tmp_path / "random.shae"
    random_bytes.write_bytes(np.random.default_rng(SEED).integers(0, 256, 300, dtype=np.uint8).tobytes())
    renamed = tmp_path / "renamed.shae"
    renamed.write_bytes(photo.read_bytes())
    empty = tmp_path / "empty.shae"
    empty.write_bytes(b"")
    missing = tmp_path / "missing"
    folder = tmp_path / "folder.png"
    folder.mkdir()

    assert_one_line_error(run("encode", str(text_file)), "notes.txt")
    assert_one_line_error(run("encode", str(truncated)))  # a .shae file is not an image
    assert_one_line_error(run("encode", str(missing) + ".png"), "missing.png")
    assert_one_line_error(run("encode", str(folder)))
    assert_one_line_error(run("encode", "-", "-o", str(tmp_path / "x.shae"), input=b""))
    assert_one_line_error(run("decode", str(truncated)), "truncated")
    assert_one_line_error(run("decode", str(random_bytes)), "random.shae")
    assert_one_line_error(run("decode", str(renamed)), "PNG")
    assert_one_line_error(run("decode", str(empty)), "empty")
    assert_one_line_error(run("decode", str(missing) + ".shae"), "missing.shae")
    assert_one_line_error(run("decode", "-", input=good[:-1]))
    assert_one_line_error(run("info", str(truncated)), "truncated")
    assert_one_line_error(run("info", str(missing) + ".shae"), "missing.shae")
    # A failed decode leaves no output file (and no temporary file) behind.
    for stem in ("truncated", "random", "renamed", "empty"):
        assert not (tmp_path / f"{stem}.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_error_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.shae"
    bad.write_bytes(b"SHAE\x01" + bytes(40))
    proc = subprocess.run([sys.executable, "-m", "imgcodec.cli", "decode", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), proc.stderr


# --------------------------------------------------------------------------------------------
# Start-up cost and the console script


def test_help_does_not_import_heavy_modules() -> None:
    script = textwrap.dedent(
        """
        import sys
        from imgcodec.cli import main

        codes = []
        for args in (["--help"], ["encode", "--help"], ["decode", "--help"], ["info", "--help"]):
            try:
                main(args)
            except SystemExit as exc:
                codes.append(exc.code or 0)
            else:
                codes.append(0)
        heavy = sorted(name for name in ("torch", "onnxruntime") if name in sys.modules)
        print("RESULT", max(codes), ",".join(heavy) or "none")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "encode" in proc.stdout
    last = proc.stdout.strip().splitlines()[-1].split()
    assert last == ["RESULT", "0", "none"], f"exit code / heavy modules imported: {last}"


@pytest.mark.parametrize("given", [None, "1"])
def test_console_script_asks_numpy_for_small_pages_unless_told(given: str | None) -> None:
    """run() sets NUMPY_MADVISE_HUGEPAGE=0 before numpy is imported (huge pages cost a short
    process time), and keeps a value the user gave."""
    script = ("import os, sys\nfrom imgcodec.cli import run\nsys.argv = ['shaec', '--version']\n"
              "try:\n    run()\nexcept SystemExit:\n    pass\n"
              "print('SETTING', os.environ.get('NUMPY_MADVISE_HUGEPAGE'), 'numpy' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if given is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = given
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].split() == ["SETTING", given or "0", "False"]


def test_console_script_version() -> None:
    exe = shutil.which("shaec") or str(Path(sys.executable).with_name("shaec"))
    assert os.path.exists(exe), "the shaec console script is not installed (pip install -e .)"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout and "shaec" in proc.stdout


def test_models_lists_the_installed_model():
    from imgcodec.zoo import default_model

    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    info = default_model()
    assert info.model_id in result.output
    assert f"1..{info.num_levels}" in result.output


def test_size_and_bpp_targets_reach_the_target_or_a_better_level(tmp_path: Path) -> None:
    photo = write_png(tmp_path / "p.png", np.asarray(Image.open(SAMPLE_PHOTO).convert("RGB"))[:128, :192])
    codec = get_codec()
    sizes = {q: len(codec.encode(np.asarray(Image.open(photo)), q).data) for q in codec.qualities}
    budget = (sizes[4] + sizes[5]) // 2
    result = run("encode", str(photo), "--size", f"{budget}B", "-o", str(tmp_path / "a.shae"))
    assert_ok(result)
    written = (tmp_path / "a.shae").read_bytes()
    assert len(written) <= budget
    # the summary line counts KB as --size reads them (1000 bytes)
    assert f"  {len(written) / 1000:.1f} KB  " in result.stderr
    # level 4 as is, or level 5 made to fit inside the budget
    assert bitstream.unpack(written).level in (4, 5)
    assert len(written) >= sizes[4]
    bpp = 8 * sizes[7] / (128 * 192)
    assert_ok(run("encode", str(photo), "--bpp", f"{bpp:.6f}", "-o", str(tmp_path / "b.shae")))
    assert bitstream.unpack((tmp_path / "b.shae").read_bytes()).level in (7, 8)
    result = run("encode", str(photo), "--size", "10B", "-o", str(tmp_path / "c.shae"))
    assert result.exit_code == 0 and "smallest level" in result.stderr
    assert_one_line_error(run("encode", str(photo), "-q", "3", "--size", "5KB"), "one of")


def test_percent_quality_maps_onto_the_levels(tmp_path: Path) -> None:
    photo = write_png(tmp_path / "p.png", np.asarray(Image.open(SAMPLE_PHOTO).convert("RGB"))[:64, :64])
    for percent, level in (("0", 1), ("100", get_codec().qualities[-1])):
        out = tmp_path / f"{percent}.shae"
        assert_ok(run("encode", str(photo), "-Q", percent, "-o", str(out)))
        assert bitstream.unpack(out.read_bytes()).level == level
    for args, fragment in ((("-Q", "101"), "0<=x<=100"), (("-q", "80"), "-Q 80")):  # usage errors: exit 2
        result = run("encode", str(photo), *args)
        assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output
    assert_one_line_error(run("encode", str(photo), "-Q", "50", "-q", "3"), "one of")


def test_info_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`shaec info *.shae | head -1`: no 'Broken pipe' message, no traceback."""
    import subprocess
    import sys

    files = [str(Path(__file__).resolve().parent.parent / "samples" / "shae-v8-q5.shae")] * 200
    code = "import sys; from imgcodec.cli import run; sys.argv = ['shaec', 'info', *sys.argv[1:]]; run()"
    proc = subprocess.Popen([sys.executable, "-c", code, *files], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # what head does after its lines
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Broken pipe" not in stderr and "Traceback" not in stderr and "Exception ignored" not in stderr


def test_models_marks_the_default_and_retired_models() -> None:
    result = run("models")
    assert result.exit_code == 0
    from imgcodec.zoo import default_model

    default = default_model()
    assert f"{default.name} ({default.model_id}) [default, encodes and decodes]" in result.output
    assert "shae-v8 (d390914f1dad3ea0) [encodes and decodes (-m)]" in result.output
    # only the tune that --tune ssim picks says so; a retired tune only decodes
    assert "shae-v11-ssim (8fa9d086be30efac) [ssim tune of shae-v11 (--tune ssim)]" in result.output
    assert "shae-v10 (48d5da1a16afce11) [retired: decodes only]" in result.output
    assert "shae-v9-ssim2 (b5feaf39db21ed6f) [retired: decodes only]" in result.output
    assert "shae-v8-ssim (390723f57b9bfa00) [retired: decodes only]" in result.output
    assert "shae-v7 (0355b5e76c9f2772) [retired: decodes only]" in result.output


def test_parallel_batch_keeps_going_past_a_bad_file(tmp_path: Path) -> None:
    sources = [write_png(tmp_path / f"img{i}.png", synthetic_rgb(24, 32, seed=i)) for i in range(3)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = run("encode", "-j", "2", *map(str, sources), str(bad), "--out-dir", str(tmp_path / "out"))
    assert result.exit_code == 1 and "1 of 4 inputs failed" in result.output
    assert "bad.png" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0.shae", "img1.shae", "img2.shae"]
    serial = [(tmp_path / "out" / f"img{i}.shae").read_bytes() for i in range(3)]
    assert serial == [get_codec().encode(synthetic_rgb(24, 32, seed=i)).data for i in range(3)]
    decoded = run("decode", "-j", "2", *[str(tmp_path / "out" / f"img{i}.shae") for i in range(3)],
                  "--out-dir", str(tmp_path / "png"))
    assert decoded.exit_code == 0, decoded.output
    assert len(list((tmp_path / "png").glob("*.png"))) == 3


def test_bench_refuses_to_overwrite_and_to_run_nothing(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    write_png(photos / "a.png", synthetic_rgb(24, 32))
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    assert_one_line_error(run("bench", str(photos), "--codecs", "jpeg", "--out", str(out)), "earlier run", "-f")
    assert_one_line_error(run("bench", str(photos), "--update", "--out", str(out)), "--update", "--codecs")
    assert_one_line_error(run("bench", str(photos), "--codecs", "jpeg", "--update", "--out", str(out)),
                          "no earlier run")
    assert_one_line_error(run("bench", str(photos), "--crops", "--codecs", "shaec,jpeg", "--update", "--out", str(out)),
                          "--crops", "--update")
    from imgcodec.bench.codecs import CODECS

    if CODECS["bpg"].available():
        pytest.skip("bpgenc is installed here")
    result = run("bench", str(photos), "--codecs", "bpg", "--out", str(tmp_path / "none"))
    assert result.exit_code == 1 and "none of the requested codecs can run here: bpg:" in result.output


def test_bench_crops_writes_the_side_by_side_picture(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    write_png(photos / "a.png", np.asarray(Image.open(SAMPLE_PHOTO).convert("RGB"))[:160, :200])
    out = tmp_path / "out"
    result = run("bench", str(photos), "--crops", "--codecs", "shaec,jpeg", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "original" and lines[1].startswith("shaec q") and lines[2].startswith("jpeg q")
    shaec_bytes, jpeg_bytes = (int(line.split()[2]) for line in lines[1:3])
    assert jpeg_bytes <= shaec_bytes or "q5 " in lines[2]  # at most shaec's size, unless none fits
    with Image.open(out / "crops.png") as im:
        assert im.size[0] > 3 * 160 and im.size[1] > 160
    assert_one_line_error(run("bench", str(photos), "--crops", "--codecs", "shaec,jpeg", "--out", str(out)), "exists")


def test_roundtrip_counts_the_alpha_segment_like_encode(tmp_path: Path) -> None:
    rgba = np.dstack([synthetic_rgb(32, 48), np.tile(np.arange(48, dtype=np.uint8) * 5, (32, 1))])
    source = tmp_path / "alpha.png"
    Image.fromarray(rgba, mode="RGBA").save(source)
    assert_ok(run("encode", str(source), "-q", "2"))
    size = (tmp_path / "alpha.shae").stat().st_size
    result = run("roundtrip", str(source), "-q", "2")
    assert result.exit_code == 0
    row = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["2"])
    assert int(row.split()[1]) == size


def test_a_large_single_image_shows_tile_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One image of many tiles: encode and decode name it on a progress line (stderr), and
    --quiet shows none. Small tiles stand in for a large photo."""
    from imgcodec import codec as codec_module
    from imgcodec.codec import Codec
    from imgcodec.zoo import find_model

    tiled = Codec(find_model("shae-v8"))
    tiled.runtime.tile, tiled.runtime.margin = 8, 8  # 200 x 264 pixels -> 4 x 5 tiles
    monkeypatch.setattr(codec_module, "_codec_for", lambda model_id, threads=None: tiled)
    photo = write_png(tmp_path / "p.png", np.asarray(Image.open(SAMPLE_PHOTO).convert("RGB"))[:200, :264])
    result = run("encode", str(photo))
    assert_ok(result)
    assert f"encoding {photo}" in result.stderr
    result = run("decode", str(tmp_path / "p.shae"))
    assert_ok(result)
    assert f"decoding {tmp_path / 'p.shae'}" in result.stderr
    quiet = run("decode", str(tmp_path / "p.shae"), "-o", str(tmp_path / "q.png"), "--quiet")
    assert_ok(quiet)
    assert quiet.stderr == ""
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.decoded.png")), np.asarray(Image.open(tmp_path / "q.png")))


def test_tune_selects_the_fine_tune_and_excludes_model(photo: Path, tmp_path: Path, monkeypatch) -> None:
    import json

    from imgcodec.zoo import MODELS_ENV, default_model, models_dir

    manifest = json.loads((models_dir() / "manifest.json").read_text())
    default = manifest["default"]
    assert_one_line_error(run("encode", str(photo), "-m", default, "--tune", "ssim", "-o", str(tmp_path / "a.shae")),
                          "-m/--model or --tune")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / default).symlink_to(models_dir() / default)
    entry = manifest["models"][default]
    (tmp_path / "models" / "manifest.json").write_text(json.dumps({"default": default, "models": {default: entry}}))
    monkeypatch.setenv(MODELS_ENV, str(tmp_path / "models"))
    assert_one_line_error(run("encode", str(photo), "--tune", "ssim", "-o", str(tmp_path / "b.shae")),
                          "no model tuned for ssim")
    tuned = {**entry, "tune": "ssim", "tuned_from": default}
    (tmp_path / "models" / "manifest.json").write_text(json.dumps(
        {"default": default, "models": {default: entry, "tuned": tuned}}))
    result = run("encode", str(photo), "--tune", "ssim", "-q", "2", "-o", str(tmp_path / "c.shae"))
    assert_ok(result)
    assert bitstream.unpack((tmp_path / "c.shae").read_bytes()).model_id.hex() == default_model().model_id
    listing = run("models")
    assert_ok(listing)
    assert "tuned (" in listing.output and f"ssim tune of {default} (--tune ssim)" in listing.output


def test_shipped_ssim_tune_encodes_with_its_own_weights(photo: Path, tmp_path: Path) -> None:
    from imgcodec.zoo import default_model, list_models, tuned_model

    if not any(info.tune == "ssim" for info in list_models()):
        pytest.skip("no MS-SSIM tune installed")
    tuned = tuned_model("ssim")
    assert tuned.model_id != default_model().model_id and not tuned.decode_only
    assert tuned.tuned_from in {info.name for info in list_models()}
    assert_ok(run("encode", str(photo), "--tune", "ssim", "-q", "3", "-o", str(tmp_path / "s.shae")))
    assert bitstream.unpack((tmp_path / "s.shae").read_bytes()).model_id.hex() == tuned.model_id
    assert_ok(run("decode", str(tmp_path / "s.shae"), "-o", str(tmp_path / "s.png")))
