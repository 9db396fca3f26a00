"""A shae-v9 model exported and run as an installed model: library, CLI, bit-exact symbols."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from imgcodec import bitstream
from imgcodec.bitstream import SEGMENT_LATENT
from imgcodec.errors import FormatError
from imgcodec.train.export import export_shae_v9
from imgcodec.train.shae_v9 import ShaeV9

@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, trained_tiny_v9: ShaeV9) -> tuple[Path, ShaeV9]:
    """A models folder holding one tiny shae-v9 model, and the torch model it came from."""
    model = trained_tiny_v9
    folder = tmp_path_factory.mktemp("models")
    model_id = export_shae_v9(model, folder / "tiny-v9")
    (folder / "manifest.json").write_text(json.dumps(
        {"default": "tiny-v9", "models": {"tiny-v9": {"folder": "tiny-v9", "default_quality": 1}}}))
    assert len(model_id) == 16
    return folder, model


@pytest.fixture
def codec(installed: tuple[Path, ShaeV9], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from imgcodec import codec as codec_module

    monkeypatch.setenv("SHAEC_MODELS_DIR", str(installed[0]))
    codec_module._codec_for.cache_clear()
    yield codec_module.get_codec()
    codec_module._codec_for.cache_clear()


def _image(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(height * width)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (height + width)], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def test_encode_decode_matches_the_torch_model(codec, installed) -> None:  # type: ignore[no-untyped-def]
    from imgcodec.codec_v9 import ShaeV9Codec

    assert isinstance(codec, ShaeV9Codec)
    model = installed[1]
    image = _image(100, 150)  # padded to 128 x 192 inside
    for quality in codec.qualities:
        result = codec.encode(image, quality)
        shae = bitstream.unpack(result.data)
        assert (shae.width, shae.height, shae.level) == (150, 100, quality)
        decoded = codec.decode(shae)
        assert decoded.shape == image.shape
        x = torch.from_numpy(np.pad(image, ((0, 28), (0, 42), (0, 0)), mode="edge")).permute(2, 0, 1)[None].float() / 255
        y_torch, _ = model.symbols(x, quality - 1)
        y_onnx, _ = codec.symbols_of(image, quality - 1)
        assert np.mean(y_torch == y_onnx) > 0.99  # ONNX and torch round the transforms a little differently
        assert 0.8 * result.estimated_bits < 8 * len(result.data) < 1.2 * result.estimated_bits + 600


def test_cli_round_trip_and_a_cut_file(codec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from imgcodec.cli import main

    Image.fromarray(_image(70, 90)).save(tmp_path / "p.png")
    runner = CliRunner()
    result = runner.invoke(main, ["encode", str(tmp_path / "p.png"), "-q", "2"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["decode", str(tmp_path / "p.shae")])
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(tmp_path / "p.decoded.png")).shape == (70, 90, 3)
    shae = bitstream.unpack((tmp_path / "p.shae").read_bytes())
    latent = shae.segments[0]
    cut = bitstream.ShaeFile(shae.model_id, shae.level, shae.width, shae.height,
                             (bitstream.Segment(latent.kind, latent.payload[:-8]),))
    with pytest.raises(FormatError):
        codec.decode(cut)
    huge = bitstream.ShaeFile(shae.model_id, shae.level, 16000, 16000, shae.segments)
    with pytest.raises(FormatError, match="too short"):
        codec.decode(huge, max_pixels=0)


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.9])
def test_a_payload_cut_short_is_refused(codec, keep: float) -> None:  # type: ignore[no-untyped-def]
    """A constriction decoder reads zeros past the payload's end; the end mark (or the passes'
    own minimum cost) tells a cut payload from an honest one, under a valid CRC too."""
    from imgcodec.codec import decompress
    from imgcodec.hyperprior import END_MARK_BITS

    result = codec.encode(_image(96, 128), 2)
    shae = bitstream.unpack(result.data)
    payload = shae.segments[0].payload
    assert len(payload) > 100
    bits = result.estimated_bits  # the mark is in the estimate
    assert bits >= END_MARK_BITS and abs(8 * len(payload) - bits) < 0.02 * bits + 64
    cut = bitstream.Segment(SEGMENT_LATENT, payload[:int(keep * len(payload)) // 4 * 4])
    with pytest.raises(FormatError, match="truncated|corrupted"):
        decompress(bitstream.pack(bitstream.ShaeFile(shae.model_id, shae.level, shae.width, shae.height, (cut,))))


def test_positions_between_levels_and_rate_control(codec) -> None:  # type: ignore[no-untyped-def]
    image = _image(128, 192)
    sizes = [len(codec.encode_at(image, p).data) for p in (1.0, 1.25, 1.5, 1.75, 2.0)]
    assert sizes[0] < sizes[-1]
    assert sizes == sorted(sizes) or max(a - b for a, b in zip(sizes, sizes[1:])) < 0.02 * sizes[-1]
    middle = codec.encode_at(image, 1.5)
    shae = bitstream.unpack(middle.data)
    assert shae.version == 3 and shae.level == 1
    assert codec.decode(shae).shape == image.shape
    assert bitstream.unpack(codec.encode_at(image, 2.0).data).version == 1  # a whole level: no step segment
    target = (sizes[0] + sizes[-1]) // 2
    result = codec.encode_to_size(image, target)
    assert 0.97 * target <= len(result.data) <= target
    for bad in (0.5, 2.5, "1.5"):
        with pytest.raises(ValueError):
            codec.encode_at(image, bad)


def test_a_level_step_at_the_top_level_is_refused(codec) -> None:  # type: ignore[no-untyped-def]
    image = _image(64, 64)
    shae = bitstream.unpack(codec.encode_at(image, 1.5).data)
    for bad_level, payload in ((2, b"\x00\x80"), (1, b"\x00\x00"), (1, b"\x01")):
        segments = tuple(bitstream.Segment(s.kind, payload) if s.kind == bitstream.SEGMENT_LEVEL_STEP else s
                         for s in shae.segments)
        forged = bitstream.ShaeFile(shae.model_id, bad_level, shae.width, shae.height, segments)
        with pytest.raises(FormatError, match="level-step"):
            codec.decode(forged)


def test_cli_info_roundtrip_and_size_with_shae_v9(codec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from imgcodec.cli import main

    Image.fromarray(_image(128, 192)).save(tmp_path / "p.png")
    runner = CliRunner()
    sizes = [len(codec.encode(_image(128, 192), q).data) for q in codec.qualities]
    target = (sizes[0] + sizes[1]) // 2
    result = runner.invoke(main, ["encode", str(tmp_path / "p.png"), "--size", f"{target}B"])
    assert result.exit_code == 0, result.output
    assert 0.97 * target <= (tmp_path / "p.shae").stat().st_size <= target
    info = runner.invoke(main, ["info", str(tmp_path / "p.shae")])
    assert info.exit_code == 0 and "quality     1 + 0." in info.output and "level-step" in info.output
    result = runner.invoke(main, ["roundtrip", str(tmp_path / "p.png"), "-q", "2"])
    assert result.exit_code == 0 and "tiny-v9" in result.output, result.output



def test_rate_distortion_rounding_trades_bits_for_latent_error(codec) -> None:  # type: ignore[no-untyped-def]
    """With a tau the encoder moves some symbols to the center across the value (cheaper under
    their rows); the file decodes to exactly the chosen symbols, `--rounding nearest` and tau 0
    give the nearest-center file, and the model.json taus are what "rd" uses."""
    image = _image(128, 192)
    nearest = codec.encode(image, 2, rounding="nearest")
    assert np.all(codec.rd_tau == 0)  # an untuned export rounds to the nearest centers
    assert codec.encode(image, 2).data == nearest.data
    y, y_nearest, _ = codec.latents_of(image, 1)
    weights = codec.inverse_gains[1].astype(np.float64)[:, None, None] ** 2
    sizes, errors = [], []
    for tau in (0.0, 1e-4, 1e-2):
        payload, bits, symbols = codec.encode_symbols(image, 1, 0, tau)
        assert np.array_equal(codec.tables.decode(payload, 8, 12)[0], symbols)
        assert np.all(np.abs(symbols - y_nearest) <= 1)
        sizes.append(len(payload))
        errors.append(float(np.sum(weights * (y - codec.y_centers[symbols]) ** 2)))  # the latent's weighed error
    assert sizes[2] < sizes[1] <= sizes[0] and errors[2] > errors[1] >= errors[0]
    codec.rd_tau = np.array([0.0, 1e-2])
    tuned = codec.encode(image, 2)
    assert len(tuned.data) < len(nearest.data) and codec.encode(image, 2, rounding="nearest").data == nearest.data
    assert np.array_equal(codec.decode(bitstream.unpack(tuned.data)), codec.pixels_of(
        codec.encode_symbols(image, 1, 0, 1e-2)[2], 1, 192, 128))
    between = codec.encode_at(image, 1.5)  # tau halfway between the levels' (0 and 0.01)
    assert codec.decode(bitstream.unpack(between.data)).shape == image.shape
    with pytest.raises(ValueError, match="rounding"):
        codec.encode_at(image, 1.5, rounding="floor")



def test_rounding_is_tuned_per_level_on_training_crops(codec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """imgcodec.train.rounding_tuning measures a shae-v9 model through its real coder and decoder:
    at every level a larger tau gives fewer bits, and each level keeps a tau of the grid."""
    from imgcodec.train.rounding_tuning import tune

    (tmp_path / "train").mkdir()
    for k in range(2):
        Image.fromarray(_image(64 + 64 * k, 128)).save(tmp_path / "train" / f"{k}.png")
    tuning = tune(codec, tmp_path / "train", count=2, size=96, taus=(1e-3, 1e-2), progress=False)
    assert tuning.stats.shape == (len(codec.qualities), 3, 2) and tuning.crops == 2
    assert np.all(np.diff(tuning.stats[:, :, 0], axis=1) <= 0)  # bpp falls as tau grows
    assert all(tau in tuning.taus for tau in tuning.best_tau) and all(c <= 0 for c in tuning.best_change)
    # the channels were weighed by their measured costs first (mean 1), and the codec kept them
    weights = np.array(tuning.channel_weights)
    assert weights.shape == codec.gains.shape[1:] and np.all(weights > 0) and weights.mean() == pytest.approx(1, abs=1e-4)
    assert np.array_equal(codec.channel_weights, weights)
    codec.channel_weights = np.ones_like(weights)
    plain = tune(codec, tmp_path / "train", count=2, size=96, taus=(1e-3,), progress=False, weigh_channels=False)
    assert plain.channel_weights is None and np.all(codec.channel_weights == 1)


def test_channel_costs_measure_the_decoders_response(codec) -> None:  # type: ignore[no-untyped-def]
    """channel_costs: per channel, the decoded image's squared change per squared change of the
    decoder's input: positive, and the same for a change half as large (the response is close to
    linear there, and the measure divides by the change squared); the rounding reads the weights:
    with every channel weighed enormously it keeps the nearest centers."""
    from imgcodec.train.rounding_tuning import channel_costs

    crops = [_image(96, 128)]
    costs = channel_costs(codec, crops, 1)
    assert costs.shape == codec.gains.shape[1:] and np.all(costs > 0)
    np.testing.assert_allclose(channel_costs(codec, crops, 1, delta=0.05), costs, rtol=0.05)
    image = _image(128, 192)
    _, nearest, _ = codec.latents_of(image, 1)
    assert not np.array_equal(codec.encode_symbols(image, 1, 0, 1e-2)[2], nearest)
    codec.channel_weights = np.full(len(costs), 1e9)
    assert np.array_equal(codec.encode_symbols(image, 1, 0, 1e-2)[2], nearest)


def test_rounding_of_an_ms_ssim_tune_is_scored_in_ms_ssim(codec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """metric="ms-ssim": the quality column is -10 log10(1 - MS-SSIM) of the decoded crop, the
    choice and the saving follow it, and model.json records the metric; others are refused."""
    from imgcodec.metrics import ms_ssim_db, ms_ssim_rgb
    from imgcodec.train.rounding_tuning import tune

    (tmp_path / "train").mkdir()
    crop = _image(96, 96)
    Image.fromarray(crop).save(tmp_path / "train" / "0.png")
    tuning = tune(codec, tmp_path / "train", count=1, size=96, taus=(1e-2,), progress=False, metric="ms-ssim")
    assert tuning.metric == "ms-ssim" and "MS-SSIM dB" in tuning.table()
    assert tuning.channel_weights is None and np.all(codec.channel_weights == 1)  # costs are squared errors
    _, _, symbols = codec.encode_symbols(crop, 0, 0, 0.0)
    expected = ms_ssim_db(ms_ssim_rgb(crop, codec.pixels_of(symbols, 0, 96, 96)))
    assert tuning.stats[0, 0, 1] == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="metric must be one of"):
        tune(codec, tmp_path / "train", count=1, size=96, metric="ssim")


def test_tiles_match_the_whole_image(codec) -> None:  # type: ignore[no-untyped-def]
    """Small tiles (2 latents, margin 4) give what one tile gives, up to float rounding."""
    image = _image(128, 256)
    data = codec.encode(image, 2).data
    whole = codec.decode(bitstream.unpack(data))
    y_whole, _ = codec.symbols_of(image, 1)
    tile, margin, single = codec.runtime.tile, codec.runtime.margin, codec.runtime.single_tile
    try:
        codec.runtime.tile, codec.runtime.margin, codec.runtime.single_tile = 2, 4, None
        decoded = codec.decode_rows(bitstream.unpack(data))
        assert decoded.count == 4  # 8 latent rows in bands of 2
        tiled = np.concatenate([rows for _, rows in decoded.rows])
        y_tiled, _ = codec.symbols_of(image, 1)
    finally:
        codec.runtime.tile, codec.runtime.margin, codec.runtime.single_tile = tile, margin, single
    assert np.abs(tiled.astype(int) - whole).max() <= 2
    assert np.mean(y_tiled == y_whole) > 0.99


@pytest.fixture(scope="module")
def detail_model(tmp_path_factory: pytest.TempPathFactory, trained_tiny_v9: ShaeV9) -> tuple[Path, ShaeV9]:
    """The tiny model grown by a residual stage of 8 channels, exported into a models folder."""
    from imgcodec.train.growth import grow_detail_stage
    from imgcodec.config import ShaeV9Config

    state = {"architecture": "shae-v9", "model_config": trained_tiny_v9.cfg.to_dict(),
             "model": trained_tiny_v9.state_dict()}
    grown, _ = grow_detail_stage(state, 8, [_image(64, 64), _image(64, 128)[:, :64]])
    model = ShaeV9(ShaeV9Config.from_dict(grown["model_config"]))
    model.load_state_dict(grown["model"])
    model.eval()
    folder = tmp_path_factory.mktemp("models-detail")
    export_shae_v9(model, folder / "tiny-v9-detail")
    (folder / "manifest.json").write_text(json.dumps(
        {"default": "tiny-v9-detail", "models": {"tiny-v9-detail": {"folder": "tiny-v9-detail", "default_quality": 1}}}))
    assert (folder / "tiny-v9-detail" / "detail_encoder.onnx").exists()
    return folder, model


def test_a_residual_stage_codes_like_the_torch_model(detail_model, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from imgcodec import codec as codec_module

    monkeypatch.setenv("SHAEC_MODELS_DIR", str(detail_model[0]))
    codec_module._codec_for.cache_clear()
    try:
        codec = codec_module.get_codec()
        assert (codec.transform_channels, codec.detail_channels) == (12, 8)
        model = detail_model[1]
        image = _image(100, 150)
        x = torch.from_numpy(np.pad(image, ((0, 28), (0, 42), (0, 0)), mode="edge")).permute(2, 0, 1)[None].float() / 255
        for quality in codec.qualities:
            y_torch, z_torch = model.symbols(x, quality - 1)
            y_onnx, z_onnx = codec.symbols_of(image, quality - 1)
            assert y_onnx.shape == (20, 8, 12)
            assert np.mean(y_torch == y_onnx) > 0.99 and np.mean(z_torch == z_onnx) > 0.99
            data = codec.encode(image, quality).data
            decoded = codec.decode(bitstream.unpack(data))
            with torch.no_grad():
                expected = model.decompress(bitstream.unpack(data).segment(SEGMENT_LATENT).payload, quality - 1, 128, 192,
                                            model.frozen_tables())
            expected = np.clip(np.rint(expected[0].permute(1, 2, 0).numpy() * 255), 0, 255)[:100, :150]
            assert np.abs(decoded.astype(int) - expected).max() <= 2
        # tiles: the residual is taken band by band as the decoder makes them
        y_whole, _ = codec.symbols_of(image, 1)
        tile, margin, single = codec.runtime.tile, codec.runtime.margin, codec.runtime.single_tile
        try:
            codec.runtime.tile, codec.runtime.margin, codec.runtime.single_tile = 2, 4, None
            y_tiled, _ = codec.symbols_of(image, 1)
        finally:
            codec.runtime.tile, codec.runtime.margin, codec.runtime.single_tile = tile, margin, single
        assert np.mean(y_tiled == y_whole) > 0.99
    finally:
        codec_module._codec_for.cache_clear()



def test_rounding_with_a_residual_stage_retakes_the_residual(detail_model, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """With a residual stage the first stage's symbols are chosen first and the residual is taken
    against their synthesis: the coded residual symbols are those of the chosen first stage, the
    file decodes to the chosen symbols, and it is smaller than the nearest-center one."""
    from imgcodec import codec as codec_module

    monkeypatch.setenv("SHAEC_MODELS_DIR", str(detail_model[0]))
    codec_module._codec_for.cache_clear()
    try:
        codec = codec_module.get_codec()
        image = _image(128, 192)
        t = codec.transform_channels
        nearest_payload, _, nearest = codec.encode_symbols(image, 1, 0, 0.0)
        payload, _, chosen = codec.encode_symbols(image, 1, 0, 1e-2)
        assert len(payload) < len(nearest_payload)
        assert np.array_equal(codec.tables.decode(payload, 8, 12)[0], chosen)
        assert not np.array_equal(chosen[:t], nearest[:t])
        gains = codec.gains[1][t:, None, None]
        retaken = np.searchsorted(codec.y_thresholds, codec._detail(image, chosen[:t], 1, 0) * gains)
        assert np.all(np.abs(chosen[t:] - retaken) <= 1)  # rounded from the retaken residual
        assert np.mean(chosen[t:] == retaken) > np.mean(nearest[t:] == retaken)
    finally:
        codec_module._codec_for.cache_clear()


_WORKER = """
import sys
from pathlib import Path

import numpy as np

from imgcodec.bitstream import unpack
from imgcodec.codec_v9 import ShaeV9Codec
from imgcodec.zoo import find_model

mode, threads, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
codec = ShaeV9Codec(find_model(), threads=threads)
if mode == "encode":
    image = np.load(folder / "image.npy")
    (folder / "image.shae").write_bytes(codec.encode(image, codec.qualities[-1]).data)
    y, z = codec.symbols_of(image, len(codec.qualities) - 1)
else:
    shae = unpack((folder / "image.shae").read_bytes())
    y, z = codec.decode_symbols(shae)
    np.save(folder / f"pixels_{threads}.npy", codec.decode(shae))
np.save(folder / f"{mode}_{threads}_y.npy", y)
np.save(folder / f"{mode}_{threads}_z.npy", z)
"""


def test_symbols_are_the_same_in_every_process_and_thread_count(installed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The quality bar: a file decodes to the encoder's very symbols in another process, with 1
    or 2 threads (the integer networks choose every probability), and to the same pixels up to
    the float synthesis's rounding."""
    import os
    import subprocess
    import sys

    np.save(tmp_path / "image.npy", _image(64, 96))
    env = {**os.environ, "SHAEC_MODELS_DIR": str(installed[0])}
    for mode, threads in (("encode", 2), ("decode", 1), ("decode", 2)):
        subprocess.run([sys.executable, "-c", _WORKER, mode, str(threads), str(tmp_path)], check=True,
                       capture_output=True, timeout=300, env=env)
    for latent in ("y", "z"):
        encoded = np.load(tmp_path / f"encode_2_{latent}.npy")
        assert np.array_equal(np.load(tmp_path / f"decode_1_{latent}.npy"), encoded)
        assert np.array_equal(np.load(tmp_path / f"decode_2_{latent}.npy"), encoded)
    difference = np.abs(np.load(tmp_path / "pixels_1.npy").astype(int) - np.load(tmp_path / "pixels_2.npy"))
    assert difference.max() <= 1
