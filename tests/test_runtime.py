"""The ONNX runtime the CLI uses must compute what the PyTorch model computes."""
from pathlib import Path

import numpy as np
import pytest
import torch

from imgcodec.autoencoder import SoftToHardAutoencoder
from imgcodec.export import export_model
from imgcodec.runtime import TransformRuntime
from imgcodec.zoo import list_models


#: The v1 layout, and the v2 one (clipped contexts, two 1/4-resolution synthesis blocks and the
#: 1/2-resolution refinement branch).
LAYOUTS = {"v1": {}, "v2": {"context_clip": 1, "synthesis_blocks4": 2, "refine_channels": 4},
           "level-conditioned": {"context_clip": 1, "synthesis_blocks4": 2, "refine_channels": 4,
                                 "level_modulation": True},
           "deep": {"context_clip": 1, "synthesis_blocks8": 4, "synthesis_blocks4": 2, "refine_channels": 4,
                    "level_modulation": True, "analysis_blocks8": 4, "analysis_blocks4": 2}}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def exported(request, tmp_path_factory):
    from imgcodec.config import ModelConfig

    cfg = ModelConfig(latent_channels=6, num_centers=5, center_range=2.0, stage4_channels=8,
                      stage8_channels=12, prior_hidden=4, lambdas=(0.01, 0.05, 0.2), **LAYOUTS[request.param])
    torch.manual_seed(0)
    model = SoftToHardAutoencoder(cfg).eval()
    if model.synthesis.refine is not None:  # its last conv starts at zero; make it matter
        with torch.no_grad():
            model.synthesis.refine.net[4].weight.normal_(0, 0.1)
    with torch.no_grad():  # level modulations start as the identity; make them differ per level
        for transform in (model.analysis, model.synthesis):
            for p in ([] if transform.modulation is None else transform.modulation.parameters()):
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
    if model.cfg.level_modulation:
        assert np.abs(y0 - y2).max() > 1e-3 and np.abs(x0 - x2).max() > 1e-3
    else:  # the level is not an input of the graph at all
        np.testing.assert_array_equal(y0, y2)
        np.testing.assert_array_equal(x0, x2)


def test_tiles_equal_whole_image(exported):
    model, folder = exported
    margin = model.cfg.receptive_radius_latents()
    whole = TransformRuntime(folder / "encoder.onnx", folder / "decoder.onnx", tile_latents=1000)
    tiled = TransformRuntime(folder / "encoder.onnx", folder / "decoder.onnx", tile_latents=3, margin_latents=margin)
    x = np.random.default_rng(1).random((3, 8 * 35, 8 * 33), dtype=np.float32)
    y = whole.analysis(x, 1)
    np.testing.assert_allclose(tiled.analysis(x, 1), y, atol=1e-4)
    np.testing.assert_allclose(tiled.synthesis(y, 1), whole.synthesis(y, 1), atol=1e-4)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_receptive_radius_is_exact(layout):
    """The radius the tiles overlap by is the transforms' true reach: the gradient of one
    latent (one output pixel) is non-zero exactly that many latents away and no further."""
    from imgcodec.config import ModelConfig

    cfg = ModelConfig(latent_channels=3, stage4_channels=4, stage8_channels=4, **LAYOUTS[layout])
    torch.manual_seed(0)
    model = SoftToHardAutoencoder(cfg).eval()
    if model.synthesis.refine is not None:
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

    from imgcodec.export import model_id_of

    _, folder = exported
    meta = json.loads((folder / "model.json").read_text())
    assert meta["model_id"] == model_id_of(folder)
    with np.load(folder / "prior.npz") as npz:
        assert np.all(np.diff(npz["centers"]) > 0)  # sorted: symbols index sorted centers
        assert npz["counts"].dtype == np.uint16
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


CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
SHIPPED = [info.name for info in list_models(Path(__file__).resolve().parent.parent / "models")]


def test_every_shipped_model_has_its_checkpoint_committed():
    assert SHIPPED and all((CHECKPOINTS / f"{name}.pt").exists() for name in SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_onnx_matches_its_pytorch_checkpoint(name):
    """The CLI's ONNX transforms and tables are the committed PyTorch model, exported."""
    from imgcodec.training import load_model
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
    np.testing.assert_allclose(model.sorted_centers().numpy(), shipped.centers)
