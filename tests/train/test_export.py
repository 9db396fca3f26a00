"""The ONNX runtime the CLI uses must compute what the PyTorch model computes."""
from pathlib import Path

import numpy as np
import pytest
import torch

from imgcodec.config import ModelConfig
from imgcodec.runtime import TransformRuntime
from imgcodec.train.export import export_model
from imgcodec.train.shae_v8 import ShaeV8
from imgcodec.zoo import list_models


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model of the shipped layout, with its zero-started parts made to matter, exported."""
    cfg = ModelConfig(latent_channels=6, num_centers=5, center_range=2.0, stage4_channels=8, stage8_channels=12,
                      prior_hidden=4, context_clip=1, refine_channels=4, lambdas=(0.01, 0.05, 0.2))
    torch.manual_seed(0)
    model = ShaeV8(cfg).eval()
    with torch.no_grad():  # the refinement's last conv and the level modulations start as identities
        model.synthesis.refine.net[4].weight.normal_(0, 0.1)
        for transform in (model.analysis, model.synthesis):
            for p in transform.modulation.parameters():
                p.normal_(0, 0.2)
    folder = tmp_path_factory.mktemp("model")
    export_model(model, folder)
    return model, folder


def test_onnx_matches_pytorch(exported):
    model, folder = exported
    runtime = TransformRuntime(folder / "encoder.onnx", folder / "decoder.onnx", threads=1)
    x = np.random.default_rng(0).random((3, 48, 72), dtype=np.float32)
    for level in range(model.cfg.num_levels):
        with torch.no_grad():
            y_torch = model.analysis(torch.from_numpy(x)[None], torch.tensor([level]))[0].numpy()
            x_torch = model.synthesis(torch.from_numpy(y_torch)[None], torch.tensor([level]))[0].numpy()
        np.testing.assert_allclose(runtime.analysis(x, level), y_torch, atol=1e-4)
        np.testing.assert_allclose(runtime.synthesis(y_torch, level), x_torch, atol=1e-4)


def test_level_conditioned_transforms_differ_per_level(exported):
    model, folder = exported
    runtime = TransformRuntime(folder / "encoder.onnx", folder / "decoder.onnx", threads=1)
    x = np.random.default_rng(2).random((3, 32, 40), dtype=np.float32)
    y0, y2 = runtime.analysis(x, 0), runtime.analysis(x, 2)
    x0, x2 = runtime.synthesis(y0, 0), runtime.synthesis(y0, 2)
    assert np.abs(y0 - y2).max() > 1e-3 and np.abs(x0 - x2).max() > 1e-3


def test_tiles_equal_whole_image(exported):
    model, folder = exported
    margin = model.cfg.receptive_radius_latents()
    whole = TransformRuntime(folder / "encoder.onnx", folder / "decoder.onnx", tile_latents=1000)
    tiled = TransformRuntime(folder / "encoder.onnx", folder / "decoder.onnx", tile_latents=3, margin_latents=margin)
    x = np.random.default_rng(1).random((3, 8 * 35, 8 * 33), dtype=np.float32)
    y = whole.analysis(x, 1)
    np.testing.assert_allclose(tiled.analysis(x, 1), y, atol=1e-4)
    np.testing.assert_allclose(tiled.synthesis(y, 1), whole.synthesis(y, 1), atol=1e-4)


@pytest.mark.parametrize("blocks", [(1, 1, 1, 1), (4, 2, 4, 2)])
def test_receptive_radius_is_exact(blocks):
    """The radius the tiles overlap by is the transforms' true reach: the gradient of one
    latent (one output pixel) is non-zero exactly that many latents away and no further."""
    a8, a4, s8, s4 = blocks
    cfg = ModelConfig(latent_channels=3, stage4_channels=4, stage8_channels=4, refine_channels=4,
                      analysis_blocks8=a8, analysis_blocks4=a4, synthesis_blocks8=s8, synthesis_blocks4=s4)
    torch.manual_seed(0)
    model = ShaeV8(cfg).eval()
    torch.nn.init.normal_(model.synthesis.refine.net[4].weight, 0, 0.1)
    side, mid = 41, 20  # latents; the probed position is in the middle
    level = torch.tensor([0])
    x = torch.rand(1, 3, 8 * side, 8 * side, requires_grad=True)
    model.analysis(x, level)[0, :, mid, mid].sum().backward()
    rows = (x.grad[0].abs().sum(dim=(0, 2)) > 0).nonzero().flatten() // 8  # latent rows reached
    analysis_reach = int(max(mid - rows.min(), rows.max() - mid))
    y = torch.rand(1, 3, side, side, requires_grad=True)
    model.synthesis(y, level)[0, :, 8 * mid:8 * mid + 8, 8 * mid:8 * mid + 8].sum().backward()
    rows = (y.grad[0].abs().sum(dim=(0, 2)) > 0).nonzero().flatten()
    synthesis_reach = int(max(mid - rows.min(), rows.max() - mid))
    assert max(analysis_reach, synthesis_reach) == cfg.receptive_radius_latents()


def test_export_writes_consistent_files(exported):
    import json

    from imgcodec.train.export import model_id_of
    from imgcodec.zoo import prior_counts

    _, folder = exported
    meta = json.loads((folder / "model.json").read_text())
    assert meta["model_id"] == model_id_of(folder)
    with np.load(folder / "prior.npz") as npz:
        assert np.all(np.diff(npz["centers"]) > 0)  # sorted: symbols index sorted centers
        counts = prior_counts(npz)  # stored as level differences
        assert counts.dtype == np.uint16 and np.all(counts.astype(np.int64).sum(axis=-1) == 1 << 16)
        assert npz["gains"].shape == (3, 6)


def test_loaded_tables_keep_the_context_clip(exported):
    """The zoo reads back the tables, and their context clip, exactly as the model tabulates them."""
    import json

    from imgcodec.zoo import LoadedModel, ModelInfo

    model, folder = exported
    meta = json.loads((folder / "model.json").read_text())
    loaded = LoadedModel(ModelInfo("tiny", folder, meta["model_id"], meta, {}))
    assert loaded.prior.context_clip == model.cfg.context_clip
    np.testing.assert_array_equal(loaded.prior.counts, model.prior.tabulate(model.sorted_centers()).counts)


CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
SHIPPED = [info.name for info in list_models() if not info.decode_only]
SHIPPED_V8 = [info.name for info in list_models() if not info.decode_only and info.architecture == "shae-v8"]
SHIPPED_V9 = [info.name for info in list_models() if not info.decode_only and info.architecture == "shae-v9"]


def test_every_shipped_encoder_has_its_checkpoint_committed():
    assert SHIPPED and all((CHECKPOINTS / f"{name}.pt").exists() for name in SHIPPED)


@pytest.mark.parametrize("name", SHIPPED_V8)
def test_shipped_onnx_matches_its_pytorch_checkpoint(name):
    """The CLI's ONNX transforms and tables are the committed PyTorch model, exported."""
    from imgcodec.train.training import load_model
    from imgcodec.zoo import LoadedModel, find_model

    model, _ = load_model(CHECKPOINTS / f"{name}.pt")
    shipped = LoadedModel(find_model(name))
    runtime = TransformRuntime(shipped.encoder_path, shipped.decoder_path, threads=1)
    x = np.random.default_rng(2).random((3, 64, 96), dtype=np.float32)
    level = model.cfg.num_levels - 1
    with torch.no_grad():
        y_torch = model.analysis(torch.from_numpy(x)[None], torch.tensor([level]))[0].numpy()
        x_torch = model.synthesis(torch.from_numpy(y_torch)[None], torch.tensor([level]))[0].numpy()
    np.testing.assert_allclose(runtime.analysis(x, level), y_torch, atol=1e-3)
    np.testing.assert_allclose(runtime.synthesis(y_torch, level), x_torch, atol=1e-3)
    # Re-tabulating in float64 elsewhere may round a count differently; the shipped table is the truth.
    retabulated = model.prior.tabulate(model.sorted_centers()).counts.astype(np.int64)
    assert np.abs(retabulated - shipped.prior.counts.astype(np.int64)).max() <= 1
    np.testing.assert_allclose(model.sorted_centers().detach().numpy(), shipped.centers)


@pytest.mark.parametrize("name", SHIPPED_V9)
def test_shipped_shae_v9_is_its_pytorch_checkpoint(name, tmp_path):
    """The integer entropy model and the levels are the committed checkpoint's, exactly (they
    pick the range coder's tables), and the shipped graphs give the checkpoint's symbols; graphs
    shipped with compressed weights (.shaw) hold the checkpoint's weights to within half a
    quantization step each (6-bit weights move a few percent of the top level's symbols, so
    those are not compared)."""
    from imgcodec.codec_v9 import ShaeV9Codec
    from imgcodec.train.export import export_shae_v9
    from imgcodec.train.training import load_model
    from imgcodec.weights.container import CODEC_FINE, CODEC_RAW, CODEC_UNIFORM
    from imgcodec.weights.model_files import decode_tensors, read_model
    from imgcodec.weights.onnx_weights import split
    from imgcodec.zoo import find_model

    model, _ = load_model(CHECKPOINTS / f"{name}.pt")
    shipped = find_model(name)
    integer_steps = shipped.meta.get("integer_weights", {}).get("steps_per_rms")  # coarser integer networks
    export_shae_v9(model, tmp_path / name, integer_steps_per_rms=integer_steps)
    for tables in ("hyperprior.npz", "levels.npz"):
        with np.load(shipped.folder / tables) as ours, np.load(tmp_path / name / tables) as again:
            assert sorted(ours.files) == sorted(again.files)
            for key in ours.files:
                np.testing.assert_array_equal(ours[key], again[key], err_msg=f"{tables}:{key}")
    compressed = sorted(f for f in shipped.meta["files"] if f.endswith(".shaw"))
    if compressed:
        for file in compressed:
            _, whole = split(tmp_path / name / file.replace(".shaw", ".onnx"))
            _, records = read_model((shipped.folder / file).read_bytes())
            decoded = decode_tensors(records)
            assert decoded.keys() == whole.keys(), file
            for record in records:
                difference = np.abs(decoded[record.name].astype(np.float64) - whole[record.name])
                if record.codec == CODEC_RAW:
                    assert difference.max() == 0, record.name
                else:
                    bound = 0.5 * record.step + np.abs(whole[record.name]) * 2.0 ** -22  # and float32's product
                    # a uniform step either way: one coded alphabet, or (fine steps) split into coded
                    # high parts and raw low bits (docs/weights.md)
                    assert record.codec in (CODEC_UNIFORM, CODEC_FINE) and np.all(difference <= bound), record.name
        return
    codec = ShaeV9Codec(shipped, threads=1)
    rng = np.random.default_rng(3)
    image = (rng.random((128, 192, 3)) * 255).astype(np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    for level in (0, model.cfg.num_levels - 1):
        with torch.no_grad():
            y_torch, z_torch = model.symbols(x, level)
        y_onnx, z_onnx = codec.symbols_of(image, level)
        assert np.mean(y_torch == y_onnx) > 0.99  # ONNX and torch round the transforms a little differently
        assert np.mean(z_torch == z_onnx) > 0.99
