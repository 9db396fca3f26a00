"""shae-v8r (imgcodec.codec_v8r): shae-v8 plus its residual stage, through the library and the CLI.

Which levels carry the stage is read from the installed model, so the tests hold when the stage
is rebuilt."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgcodec import bitstream
from imgcodec.bitstream import SEGMENT_DETAIL, SEGMENT_LATENT, Segment, ShaeFile
from imgcodec.cli import main
from imgcodec.codec import decompress, get_codec
from imgcodec.codec_v8r import DetailCodec
from imgcodec.errors import FormatError
from imgcodec.metrics import psnr_rgb
from imgcodec.zoo import find_model

MODEL = "shae-v8r"


def textured_rgb(height: int, width: int, seed: int = 5) -> np.ndarray:
    """Gradients under fine stripes and grain: detail that shae-v8's latent cannot hold."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([60 + 140 * x / width, 50 + 150 * y / height, 200 - 100 * (x + y) / (height + width)], -1)
    stripes = 30 * np.sin(x * 1.9 + y * 0.7)[..., None] * np.array([1.0, 0.6, 0.3])
    image = base + stripes + rng.normal(0, 10, (height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def codec() -> DetailCodec:
    codec = get_codec(MODEL)
    assert isinstance(codec, DetailCodec)
    return codec


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return textured_rgb(72, 100)  # sides not multiples of 16


def _stage_level(codec: DetailCodec) -> int:
    return next(level for level in range(len(codec.qualities)) if codec.stage.active(level))


def _repack(data: bytes, segments: list[Segment]) -> bytes:
    shae = bitstream.unpack(data)
    return bitstream.pack(ShaeFile(shae.model_id, shae.level, shae.width, shae.height, tuple(segments), shae.gray))


def test_every_level_round_trips_and_the_stage_pays(codec: DetailCodec, image: np.ndarray) -> None:
    base = get_codec(codec.info.meta["base"])
    assert any(codec.stage.active(level) for level in range(len(codec.qualities)))
    for quality in codec.qualities:
        result = codec.encode(image, quality)
        shae = bitstream.unpack(result.data)
        plain_result = base.encode(image, quality)
        plain = plain_result.data
        assert shae.model_id == bytes.fromhex(codec.info.model_id)
        # the base model's symbols are coded as the base model codes them
        assert shae.segment(SEGMENT_LATENT).payload == bitstream.unpack(plain).segment(SEGMENT_LATENT).payload
        decoded = decompress(result.data)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        plain_psnr = psnr_rgb(image, decompress(plain))
        if codec.stage.active(quality - 1):
            assert [s.kind for s in shae.segments] == [SEGMENT_LATENT, SEGMENT_DETAIL]
            # the top level gains most (its step is the finest)
            assert psnr_rgb(image, decoded) >= plain_psnr + (0.5 if quality == codec.qualities[-1] else 0.0)
            stage_bits = 8 * (len(result.data) - len(plain))  # its payload and segment header
            estimate = result.estimated_bits - plain_result.estimated_bits
            assert abs(stage_bits - estimate) <= 0.03 * estimate + 8 * 16
        else:
            assert [s.kind for s in shae.segments] == [SEGMENT_LATENT]
            assert psnr_rgb(image, decoded) == plain_psnr


def test_bands_match_the_whole_decode(codec: DetailCodec) -> None:
    data = codec.encode(textured_rgb(164, 200), len(codec.qualities)).data  # a latent of 21 x 25
    tiled = DetailCodec(find_model(MODEL), find_model(codec.info.meta["base"]))
    tiled.runtime.tile, tiled.runtime.margin = 3, 8  # bands of 24 rows: blocks of 16 straddle them
    rows = tiled.decode_rows(bitstream.unpack(data))
    assert rows.count > 2
    banded = np.concatenate([band for _, band in rows.rows])
    assert np.abs(banded.astype(np.int16) - decompress(data)).max() <= 1


def test_detail_segment_must_match_the_level(codec: DetailCodec, image: np.ndarray) -> None:
    level = _stage_level(codec)
    data = codec.encode(image, level + 1).data
    latent, detail = bitstream.unpack(data).segments
    with pytest.raises(FormatError, match="no detail segment"):
        decompress(_repack(data, [latent]))
    plain = get_codec(codec.info.meta["base"]).encode(image, level + 1).data
    with pytest.raises(FormatError, match="detail segment"):
        decompress(_repack(plain, [bitstream.unpack(plain).segments[0], detail]))
    off = [lv for lv in range(len(codec.qualities)) if not codec.stage.active(lv)]
    if off:
        no_stage = codec.encode(image, off[0] + 1).data
        with pytest.raises(FormatError, match="detail segment"):
            decompress(_repack(no_stage, [bitstream.unpack(no_stage).segments[0], detail]))


def test_damaged_detail_payloads_are_format_errors_or_images(codec: DetailCodec, image: np.ndarray) -> None:
    data = codec.encode(image, len(codec.qualities)).data
    latent, detail = bitstream.unpack(data).segments
    rng = np.random.default_rng(9)
    payload = detail.payload
    candidates = [payload[:4], payload[:-4], payload + payload[:8], bytes(len(payload))]
    for _ in range(20):
        damaged = bytearray(payload)
        damaged[int(rng.integers(len(damaged)))] ^= 1 << int(rng.integers(8))
        candidates.append(bytes(damaged))
    for candidate in candidates:
        try:
            decoded = decompress(_repack(data, [latent, Segment(SEGMENT_DETAIL, candidate)]))
        except FormatError as exc:
            assert "\n" not in str(exc)
        else:
            assert decoded.shape == image.shape


def test_cli_encodes_and_decodes_with_the_stage(tmp_path: Path, codec: DetailCodec, image: np.ndarray) -> None:
    Image.fromarray(image).save(tmp_path / "photo.png")
    quality = str(len(codec.qualities))
    encoded = CliRunner().invoke(main, ["encode", str(tmp_path / "photo.png"), "-m", MODEL, "-q", quality])
    assert encoded.exit_code == 0, encoded.output
    shae_path = next(tmp_path.glob("*.shae"))
    info = CliRunner().invoke(main, ["info", str(shae_path)])
    assert info.exit_code == 0 and "detail" in info.output and MODEL in info.output
    decoded = CliRunner().invoke(main, ["decode", str(shae_path), "-o", str(tmp_path / "back.png")])
    assert decoded.exit_code == 0, decoded.output
    assert np.asarray(Image.open(tmp_path / "back.png")).shape == image.shape
