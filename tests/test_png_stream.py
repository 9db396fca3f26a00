"""Tests for imgcodec.png_stream: PNGs written band by band read back exactly with Pillow."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imgcodec.imageio import Metadata
from imgcodec.png_stream import write_png

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def bands_of(image: np.ndarray, heights: list[int]) -> list[np.ndarray]:
    cuts = np.cumsum([0, *heights])
    return [image[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_bands_read_back_exactly(channels: int) -> None:
    image = np.random.default_rng(channels).integers(0, 256, (37, 23, channels), dtype=np.uint8)
    out = io.BytesIO()
    write_png(out, 23, 37, channels, bands_of(image, [5, 1, 20, 11]))
    im = Image.open(io.BytesIO(out.getvalue()))
    assert im.mode == MODES[channels]
    decoded = np.asarray(im)
    assert np.array_equal(decoded.reshape(image.shape), image)


def test_metadata_is_written_where_pillow_reads_it() -> None:
    exif = Image.Exif()
    exif[0x010F] = "shaec test camera"  # Make
    icc = bytes(range(256)) * 2
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">shaec</x:xmpmeta>'
    image = np.full((4, 6, 3), 128, np.uint8)
    out = io.BytesIO()
    write_png(out, 6, 4, 3, [image], Metadata(icc=icc, exif=exif.tobytes(), xmp=xmp))
    im = Image.open(io.BytesIO(out.getvalue()))
    im.load()
    assert im.info["icc_profile"] == icc
    assert im.getexif()[0x010F] == "shaec test camera"
    assert im.info["XML:com.adobe.xmp"].encode() == xmp


def test_large_output_spans_several_idat_chunks() -> None:
    image = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)  # incompressible
    out = io.BytesIO()
    write_png(out, 800, 600, 3, bands_of(image, [200, 200, 200]))
    assert out.getvalue().count(b"IDAT") >= 2
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out.getvalue()))), image)


@pytest.mark.parametrize("bands, message", [
    ([np.zeros((2, 5, 3), np.uint8)], "not the 4"),
    ([np.zeros((5, 5, 3), np.uint8)], "more than"),
    ([np.zeros((4, 6, 3), np.uint8)], "must be"),
    ([np.zeros((4, 5, 3), np.float32)], "must be"),
])
def test_bands_that_do_not_match_the_header_are_refused(bands: list[np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_png(io.BytesIO(), 5, 4, 3, bands)
    with pytest.raises(ValueError):
        write_png(io.BytesIO(), 5, 4, 5, bands)
