"""The Pillow plugin, through Pillow's own API."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import imgcodec.pillow  # noqa: F401  (registers the plugin)
from imgcodec.codec import compress, decompress

SAMPLE = Path(__file__).resolve().parent.parent / "samples"


def test_open_reads_the_header_and_decodes_like_the_library() -> None:
    path = SAMPLE / "shae-v8-q5.shae"
    with Image.open(path) as im:
        assert im.format == "SHAE" and im.size == (256, 192) and im.mode == "RGB"
        assert im.info["quality"] == 5
        pixels = np.asarray(im)
    assert np.array_equal(pixels, decompress(path.read_bytes()))


def test_alpha_files_open_as_rgba() -> None:
    with Image.open(SAMPLE / "shae-v8-q2-alpha.shae") as im:
        assert im.mode == "RGBA"
        assert np.asarray(im).shape == (192, 256, 4)


def test_save_with_quality_and_reopen(tmp_path: Path) -> None:
    with Image.open(SAMPLE / "coffee.png") as src:
        crop = src.convert("RGB").crop((0, 0, 96, 64))
    crop.save(tmp_path / "x.shae", quality=3)
    data = (tmp_path / "x.shae").read_bytes()
    assert data == compress(np.asarray(crop), 3)
    with Image.open(tmp_path / "x.shae") as im:
        assert im.info["quality"] == 3 and im.size == (96, 64)
        im.load()
    crop.save(tmp_path / "y.shae")  # the extension alone picks the format


def test_other_files_are_not_claimed(tmp_path: Path) -> None:
    with Image.open(SAMPLE / "coffee.png") as im:
        assert im.format == "PNG"


def test_save_with_tune(tmp_path: Path) -> None:
    """tune="psnr" is the default model; an uninstalled or unknown tune is an error, not a silent default."""
    import pytest

    from imgcodec.errors import ModelNotFoundError
    from imgcodec.zoo import list_models

    with Image.open(SAMPLE / "coffee.png") as src:
        crop = src.convert("RGB").crop((0, 0, 64, 48))
    crop.save(tmp_path / "p.shae", quality=2, tune="psnr")
    assert (tmp_path / "p.shae").read_bytes() == compress(np.asarray(crop), 2)
    with pytest.raises(ModelNotFoundError, match="unknown tune"):
        crop.save(tmp_path / "u.shae", tune="vmaf")
    if not any(info.tune == "ssim" for info in list_models()):
        with pytest.raises(ModelNotFoundError, match="no model tuned for ssim"):
            crop.save(tmp_path / "s.shae", tune="ssim")
