"""End-to-end tests of the benchmark library on tiny generated images."""

from __future__ import annotations

import csv
import json
import types
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcodec.bench import CODECS, BenchCodec, format_table, get_codecs, run_bench
from imgcodec.bench.runner import read_records_csv, summarize_records
from imgcodec.bench.codecs import (BpgX265, ShaecCodec, downsample_chroma_2x2,
                                   rgb_to_ycbcr_bt601_full, upsample_chroma_2x2,
                                   ycbcr_to_rgb_bt601_full)
from imgcodec.errors import ImageInputError
from imgcodec.metrics import psnr_rgb
from imgcodec.zoo import default_model

HAVE_X265 = CODECS["bpg-x265"].available()
needs_x265 = pytest.mark.skipif(not HAVE_X265, reason="ffmpeg with libx265 not available")


def gradient_image(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth colour gradients plus mild Gaussian noise; (height, width, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)  # (H, W) each
    base = np.stack([20 + 200 * x / width, 30 + 180 * y / height,
                     60 + 120 * np.sin((x + y) / 9.0) ** 2], axis=-1)  # (H, W, 3)
    return np.clip(np.rint(base + rng.normal(0, 5, base.shape)), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FakeCodec(BenchCodec):
    """Keeps the top ``quality`` bits of every sample and zlib-compresses them (lossy, exact
    size, deterministic): more bits, higher quality and rate."""

    name: str = "fake"
    description: str = "test codec: bit-depth reduction + zlib"

    def qualities(self) -> tuple[int, ...]:
        return (3, 4, 5, 6)

    def unavailable_reason(self) -> str | None:
        return None

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        shift = 8 - int(quality)
        return bytes([shift]) + zlib.compress((rgb >> shift).tobytes(), 9)

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        shift = data[0]
        kept = np.frombuffer(zlib.decompress(data[1:]), np.uint8).reshape(height, width, 3)
        midpoint = (1 << shift) >> 1  # reconstruct at the middle of each bin
        return ((kept.astype(np.uint16) << shift) + midpoint).clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class MissingCodec(FakeCodec):
    name: str = "missing"

    def unavailable_reason(self) -> str | None:
        return "not installed in this test"


@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tiny-set"
    directory.mkdir()
    Image.fromarray(gradient_image(64, 48, seed=1)).save(directory / "a.png")
    Image.fromarray(gradient_image(61, 45, seed=2)).save(directory / "b_odd.ppm")
    (directory / "notes.txt").write_text("not an image")
    return directory


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def check_outputs(result, out_dir: Path, codecs: list[str]) -> dict:
    """Shared checks on files, JSON keys, bpp arithmetic and PSNR ordering."""
    for name in ("results.json", "results.csv", "bdrate.csv", "rd-psnr.png", "rd-msssim.png"):
        assert (out_dir / name).stat().st_size > 0, name
    data = json.loads((out_dir / "results.json").read_text())
    assert data["dataset"] == "tiny-set"
    assert data["num_images"] == 2
    assert list(data["codecs"]) == codecs
    for name in codecs:
        series = data["codecs"][name]["results"]
        for key in ("quality", "bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
            assert len(series[key]) == len(series["quality"]), (name, key)
        assert series["psnr-rgb"] == sorted(series["psnr-rgb"]), f"{name}: PSNR not increasing"
        assert series["bpp"] == sorted(series["bpp"]), f"{name}: bpp not increasing"
        assert all(0 < v <= 1 for v in series["ms-ssim-rgb"])
    rows = read_csv(out_dir / "results.csv")
    assert len(rows) == sum(len(data["codecs"][n]["results"]["quality"]) for n in codecs) * 2
    for row in rows:
        pixels = int(row["width"]) * int(row["height"])
        assert float(row["bpp"]) == pytest.approx(8 * int(row["bytes"]) / pixels, rel=1e-5)
    sizes = {(r["image"], r["width"], r["height"]) for r in rows}
    assert sizes == {("a.png", "64", "48"), ("b_odd.ppm", "61", "45")}
    assert result.errors == []
    return data


def test_run_bench_jpeg_and_fake(image_dir: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "out"
    result = run_bench(image_dir, ["jpeg"], out_dir, progress=False,
                       qualities={"jpeg": [20, 50, 90]},
                       extra_codecs=[FakeCodec(), MissingCodec()])
    assert "skipping missing: not installed in this test" in capsys.readouterr().err
    data = check_outputs(result, out_dir, ["jpeg", "fake"])
    assert data["codecs"]["jpeg"]["results"]["quality"] == [20, 50, 90]
    assert data["skipped"] == {"missing": "not installed in this test"}
    # fake vs jpeg for both metrics; no BPG ran, so JPEG is the only anchor
    assert {(e["codec"], e["anchor"], e["metric"]) for e in data["bd_rate"]} == {
        ("fake", "jpeg", "psnr-rgb"), ("fake", "jpeg", "ms-ssim-rgb-db")}
    bd_rows = read_csv(out_dir / "bdrate.csv")
    assert len(bd_rows) == 2
    table = format_table(result)
    assert "jpeg" in table and "fake" in table and "BD-rate" in table and "MS-SSIM dB" in table
    # results.csv reads back into the same curves (up to the CSV's rounding).
    read_back = summarize_records(read_records_csv(out_dir / "results.csv"))
    assert list(read_back) == ["jpeg", "fake"]
    for name, curve in result.curves.items():
        assert read_back[name].quality == curve.quality
        assert read_back[name].num_images == curve.num_images
        for key in ("bpp", "psnr", "ms_ssim"):
            assert getattr(read_back[name], key) == pytest.approx(getattr(curve, key), rel=1e-5)


def test_any_installed_model_is_a_codec_by_name() -> None:
    from imgcodec.zoo import list_models

    name = next(info.name for info in list_models() if not info.decode_only)
    (codec,) = get_codecs([f"shaec:{name}"])
    assert codec.name == f"shaec:{name}" and codec.unavailable_reason() is None and f"-m {name}" in codec.description
    rgb = gradient_image(32, 48, seed=3)
    data = codec.encode(rgb, codec.qualities()[0])
    assert codec.decode(data, rgb.shape[1], rgb.shape[0]).shape == rgb.shape
    from imgcodec.codec import parse
    from imgcodec.zoo import find_model

    assert parse(data).model_id.hex() == find_model(name).model_id
    (missing,) = get_codecs(["shaec:no-such-model"])
    assert "no-such-model" in missing.unavailable_reason()
    with pytest.raises(ValueError, match="shaec:MODEL"):
        get_codecs(["shaec-typo"])


def test_update_runs_one_codec_again_and_keeps_the_others(image_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    first = run_bench(image_dir, ["jpeg"], out_dir, progress=False, qualities={"jpeg": [20, 50], "fake": [3, 6]},
                      extra_codecs=[FakeCodec()])
    again = run_bench(image_dir, ["webp"], out_dir, progress=False, qualities={"webp": [30, 60]}, update=True)
    assert again.codecs == ["jpeg", "fake", "webp"]
    rows = read_csv(out_dir / "results.csv")
    assert [r["codec"] for r in rows].count("jpeg") == 4 and [r["codec"] for r in rows].count("webp") == 4
    for name in ("jpeg", "fake"):
        assert again.curves[name].bpp == pytest.approx(first.curves[name].bpp, rel=1e-5)
    assert {(e.codec, e.anchor) for e in again.bd_rates} >= {("webp", "jpeg"), ("fake", "jpeg")}
    # the same codec again replaces its rows
    third = run_bench(image_dir, ["webp"], out_dir, progress=False, qualities={"webp": [40]}, update=True)
    fake_rows = 2 * len(first.curves["fake"].quality)
    assert third.curves["webp"].quality == [40] and len(read_csv(out_dir / "results.csv")) == 4 + fake_rows + 2
    with pytest.raises(ValueError, match="no earlier run"):
        run_bench(image_dir, ["webp"], tmp_path / "empty", progress=False, qualities={"webp": [40]}, update=True)
    (image_dir / "c.png").write_bytes((image_dir / "a.png").read_bytes())
    with pytest.raises(ValueError, match="other images"):
        run_bench(image_dir, ["webp"], out_dir, progress=False, qualities={"webp": [40]}, update=True)


def test_progress_counts_levels(image_dir: Path, tmp_path: Path, capsys) -> None:
    """The bar moves once per image, codec and level (2 images x 3 JPEG levels here)."""
    run_bench(image_dir, ["jpeg"], tmp_path / "out", progress=True, qualities={"jpeg": [20, 50, 90]})
    err = capsys.readouterr().err
    assert "6/6" in err and "level" in err


@needs_x265
def test_run_bench_with_bpg_x265(image_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    result = run_bench(image_dir, ["jpeg", "bpg-x265"], out_dir, progress=False,
                       qualities={"jpeg": [20, 50, 90], "bpg-x265": [42, 32, 22],
                                  "fake": [3, 5]},
                       extra_codecs=[FakeCodec()])
    data = check_outputs(result, out_dir, ["jpeg", "bpg-x265", "fake"])
    bd = {(e["codec"], e["anchor"], e["metric"]): e for e in data["bd_rate"]}
    anchors = {anchor for _, anchor, _ in bd}
    assert anchors == {"jpeg", "bpg-x265"}
    assert ("bpg-x265", "jpeg", "psnr-rgb") in bd and ("jpeg", "bpg-x265", "psnr-rgb") in bd
    for entry in bd.values():  # a number, or None with a reason
        assert (entry["bd_rate_percent"] is None) == (entry["reason"] is not None)
    table = format_table(result)
    assert "bpg-x265" in table


def test_non_overlapping_bd_rate_is_reported(image_dir: Path, tmp_path: Path) -> None:
    # JPEG at q 90-95 and the fake codec at 3 bits cover disjoint PSNR ranges
    result = run_bench(image_dir, ["jpeg"], tmp_path / "out", progress=False,
                       qualities={"jpeg": [90, 95], "fake": [2, 3]}, extra_codecs=[FakeCodec()])
    entry = next(e for e in result.bd_rates if e.metric == "psnr-rgb")
    assert entry.result.percent is None
    assert "do not overlap" in format_table(result)


def test_run_bench_two_worker_processes(image_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    result = run_bench(image_dir, ["jpeg"], out_dir, jobs=2, progress=False,
                       qualities={"jpeg": [30, 80], "fake": [4, 6]},
                       extra_codecs=[FakeCodec()])
    check_outputs(result, out_dir, ["jpeg", "fake"])
    serial = run_bench(image_dir, ["jpeg"], tmp_path / "serial", progress=False,
                       qualities={"jpeg": [30, 80], "fake": [4, 6]}, extra_codecs=[FakeCodec()])
    assert [(r.codec, r.quality, r.image, r.n_bytes, r.psnr) for r in result.records] == \
        [(r.codec, r.quality, r.image, r.n_bytes, r.psnr) for r in serial.records]


def test_run_bench_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError):
        run_bench(tmp_path, ["jpeg"], tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="valid names: jpeg"):
        get_codecs(["jpeg", "nope"])
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="not selected"):
        run_bench(tmp_path, ["jpeg"], tmp_path / "out", progress=False, qualities={"webp": [5]})


def test_default_selection_and_registry() -> None:
    names = [c.name for c in get_codecs(None)]
    assert names[0] == "jpeg" and "shaec" in names
    if not CODECS["bpg"].available():
        assert "bpg-x265" in names and "bpg-x265-420" in names
    for codec in CODECS.values():
        assert codec.available() == (codec.unavailable_reason() is None)


# --------------------------------------------------------------------------- bpg-x265 details


def test_ycbcr_bt601_full_range_matches_pillow() -> None:
    rgb = gradient_image(33, 17, seed=3)
    ycbcr = rgb_to_ycbcr_bt601_full(rgb)
    pillow = np.asarray(Image.fromarray(rgb).convert("YCbCr"))  # JFIF: BT.601, full range
    assert np.abs(ycbcr.astype(int) - pillow).max() <= 1
    corners = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_array_equal(rgb_to_ycbcr_bt601_full(corners)[0, :2],
                                  [[0, 128, 128], [255, 128, 128]])  # no footroom/headroom
    assert np.abs(ycbcr_to_rgb_bt601_full(ycbcr).astype(int) - rgb).max() <= 2


def test_chroma_resampling() -> None:
    flat = np.full((6, 10), 77, np.uint8)
    assert downsample_chroma_2x2(flat).shape == (3, 5)
    np.testing.assert_allclose(upsample_chroma_2x2(downsample_chroma_2x2(flat)), 77.0)
    ramp = np.tile(np.arange(0, 200, 10, dtype=np.uint8), (4, 1))  # (4, 20), linear in x
    up = upsample_chroma_2x2(downsample_chroma_2x2(ramp))
    np.testing.assert_allclose(up[:, 2:-2], ramp[:, 2:-2], atol=0.5)  # linear kept inside


@needs_x265
@pytest.mark.parametrize("chroma_format", ["444", "420"])
def test_x265_pipeline_is_range_transparent(chroma_format: str) -> None:
    """Lossless x265 must return the exact planes: ffmpeg converts neither range nor format."""
    codec = BpgX265(name="t", chroma_format=chroma_format)
    rgb = np.random.default_rng(4).integers(0, 256, size=(21, 35, 3), dtype=np.uint8)
    rgb[0, 0], rgb[0, 1] = 0, 255  # extremes of full range
    planes = codec.to_planes(rgb)
    stream = codec.encode_planes(planes, 35, 21, "lossless=1")
    assert codec.decode_planes(stream) == planes


@needs_x265
@pytest.mark.parametrize("name", ["bpg-x265", "bpg-x265-420"])
def test_bpg_x265_odd_size(name: str) -> None:
    codec = CODECS[name]
    rgb = gradient_image(37, 23, seed=5)
    previous = 0.0
    for qp in (42, 22):
        data = codec.encode(rgb, qp)
        assert data[:4] == b"\x00\x00\x00\x01"  # raw HEVC Annex B stream
        decoded = codec.decode(data, 37, 23)
        assert decoded.shape == (23, 37, 3) and decoded.dtype == np.uint8
        quality = psnr_rgb(rgb, decoded)
        assert quality > previous
        previous = quality
    assert previous > 30.0  # noisy 37x23 image; natural images reach > 40 dB at QP 22


# --------------------------------------------------------------------------- shaec adapter


def test_shaec_codec_uses_library_api(monkeypatch) -> None:
    calls = []

    def compress(rgb: np.ndarray, level: int, model: str | None = None) -> bytes:
        calls.append((level, model))
        return bytes([level]) + rgb.tobytes()

    def decompress(data: bytes) -> np.ndarray:
        rgb = np.frombuffer(data[1:], np.uint8).reshape(4, 5, 3)
        alpha = np.full((4, 5, 1), 255, np.uint8)
        return np.concatenate([rgb, alpha], axis=-1)  # RGBA: the adapter must drop alpha

    fake = types.ModuleType("imgcodec.codec")
    fake.compress, fake.decompress = compress, decompress
    fake.available_levels = lambda model=None: [3, 1, 2]
    monkeypatch.setitem(__import__("sys").modules, "imgcodec.codec", fake)
    codec = ShaecCodec()
    assert codec.available() and codec.qualities() == (1, 2, 3)
    rgb = gradient_image(5, 4, seed=6)
    np.testing.assert_array_equal(codec.decode(codec.encode(rgb, 2), 5, 4), rgb)
    assert calls == [(2, default_model().name)]
    fake.available_levels = lambda model=None: []
    assert codec.unavailable_reason() == "no shaec levels installed"


def test_shaec_ssim_is_unavailable_without_an_ssim_tune(tmp_path, monkeypatch) -> None:
    """The bench's shaec-ssim row runs the default model's MS-SSIM fine-tune, and says so when
    none is installed."""
    from imgcodec.zoo import MODELS_ENV, models_dir

    manifest = json.loads((models_dir() / "manifest.json").read_text())
    default = manifest["default"]
    (tmp_path / default).symlink_to(models_dir() / default)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"default": default, "models": {default: manifest["models"][default]}}))
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    codec = CODECS["shaec-ssim"]
    assert "no model tuned for ssim" in codec.unavailable_reason()
    manifest["models"][default]["tune"] = "ssim"  # the default itself tuned for ssim: it is the one
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"default": default, "models": {default: manifest["models"][default]}}))
    assert codec.unavailable_reason() is None and codec.qualities()[0] == 1
