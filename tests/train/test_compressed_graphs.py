"""A shae-v9 model whose graphs ship as .shaw files (export_shae_v9(weights_bits=...)): installed,
coded, decoded the same in another process, checked like every model file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgcodec.errors import ModelNotFoundError
from imgcodec.train.export import export_shae_v9, shae_v9_calibration, calibration_crops
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.zoo import folder_model, graph_path

GRAPHS = ("encoder", "hyper_encoder", "decoder")


def _crops(count: int = 2, size: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def _image(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (height + width)], axis=-1)
    return np.clip(base + np.random.default_rng(0).normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, trained_tiny_v9: ShaeV9) -> Path:
    """A models folder with the tiny model twice: float32 graphs ("plain") and .shaw ones ("small")."""
    folder = tmp_path_factory.mktemp("models")
    export_shae_v9(trained_tiny_v9, folder / "plain")
    export_shae_v9(trained_tiny_v9, folder / "small", weights_bits=6, calibration_crops=_crops())
    (folder / "manifest.json").write_text(json.dumps(
        {"default": "small", "models": {name: {"folder": name, "default_quality": 1} for name in ("plain", "small")}}))
    return folder


def test_the_graphs_are_shaw_files_listed_and_smaller(models: Path) -> None:
    small, plain = folder_model(models / "small"), folder_model(models / "plain")
    assert sorted(p.name for p in small.folder.glob("*.onnx")) == []
    for stem in GRAPHS:
        assert graph_path(small, stem).name == f"{stem}.shaw" and f"{stem}.shaw" in small.meta["files"]
        assert graph_path(plain, stem).name == f"{stem}.onnx"
        assert graph_path(small, stem).stat().st_size < graph_path(plain, stem).stat().st_size
    assert small.meta["weights"] == {"bits_per_weight": 6, "allocation": "calibrated"}
    assert small.model_id != plain.model_id  # other decoder weights: another model


def test_compressed_model_codes_close_to_the_float_one(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imgcodec import codec as codec_module

    monkeypatch.setenv("SHAEC_MODELS_DIR", str(models))
    codec_module._codec_for.cache_clear()
    image = _image(96, 130)
    try:
        decoded = {}
        for name in ("plain", "small"):
            data = codec_module.compress(image, 2, model=name)
            decoded[name] = codec_module.decompress(data)
            assert decoded[name].shape == image.shape
    finally:
        codec_module._codec_for.cache_clear()
    # 6 bits per weight move the tiny model's pixels a little, not wholesale
    assert np.mean(np.abs(decoded["small"].astype(int) - decoded["plain"])) < 8


def test_another_process_decodes_the_same_pixels(models: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from imgcodec import codec as codec_module

    monkeypatch.setenv("SHAEC_MODELS_DIR", str(models))
    codec_module._codec_for.cache_clear()
    try:
        data = codec_module.compress(_image(64, 64), 1, model="small")
        here = codec_module.decompress(data)
    finally:
        codec_module._codec_for.cache_clear()
    (tmp_path / "x.shae").write_bytes(data)
    script = ("import sys, numpy as np\nfrom imgcodec import codec\n"
              "np.save(sys.argv[2], codec.decompress(open(sys.argv[1], 'rb').read()))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.shae"), str(tmp_path / "x.npy")],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), here)


def test_a_damaged_shaw_graph_is_refused(models: Path, tmp_path: Path) -> None:
    import shutil

    from imgcodec.codec_v9 import ShaeV9Codec

    copy = tmp_path / "small"
    shutil.copytree(models / "small", copy)
    data = bytearray((copy / "decoder.shaw").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "decoder.shaw").write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError, match="decoder.shaw is damaged"):
        ShaeV9Codec(folder_model(copy))


def test_calibration_inputs_fit_each_graph(trained_tiny_v9: ShaeV9) -> None:
    inputs = shae_v9_calibration(trained_tiny_v9, _crops(3))
    assert inputs["encoder"]["image"].shape == (1, 3, 64, 192)
    m = trained_tiny_v9.cfg.latent_channels
    assert inputs["hyper_encoder"]["latent"].shape == inputs["decoder"]["latent"].shape == (1, m, 4, 36)
    with pytest.raises(ValueError, match="calibration crops"):
        export_shae_v9(trained_tiny_v9, Path("unused"), weights_bits=6)


def test_calibration_crops_are_centred_and_spread(tmp_path: Path) -> None:
    for k in range(8):
        Image.fromarray(np.full((200, 300, 3), k, np.uint8)).save(tmp_path / f"{k}.png")
    crops = calibration_crops(tmp_path)
    assert [c.shape for c in crops] == [(128, 128, 3)] * 4
    assert [int(c[0, 0, 0]) for c in crops] == [0, 2, 4, 6]
    drawn = calibration_crops(tmp_path, 64, seed=0)
    assert [c.shape for c in drawn] == [(64, 64, 3)] * 4
    assert all(np.array_equal(a, b) for a, b in zip(drawn, calibration_crops(tmp_path, 64, seed=0)))
    for k in range(8):
        Image.fromarray(np.zeros((100, 300, 3), np.uint8)).save(tmp_path / f"{k}.png")
    with pytest.raises(ValueError, match="at least 128x128"):
        calibration_crops(tmp_path)


@pytest.mark.slow  # a script run of several seconds; CI runs it with the slow tests
def test_dogfood_script_measures_a_checkpoint(tmp_path: Path, trained_tiny_v9: ShaeV9) -> None:
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        for k in range(2):
            Image.fromarray(_image(128, 128 + 64 * k)).save(tmp_path / split / f"{k}.png")
    torch.save({"architecture": "shae-v9", "model_config": trained_tiny_v9.cfg.to_dict(),
                "model": trained_tiny_v9.state_dict(), "step": 3}, tmp_path / "c.pt")
    script = Path(__file__).resolve().parents[2] / "scripts" / "weights_dogfood.py"
    done = subprocess.run([sys.executable, str(script), "--checkpoint", str(tmp_path / "c.pt"), "--data",
                           str(tmp_path / "val"), "--calibration", str(tmp_path / "train"), "--levels", "1", "2",
                           "--bits", "8", "32", "--integer-steps", "0", "4"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ") and "x |" in line]
    rows = rows[-3:]  # each row is printed as it is measured, then the whole table
    # float32 graphs with full integer networks are the reference, not a row
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("8", "full (16 bits)"), ("8", "4"), ("float32", "4")]
    for bits, steps, graphs, hyperprior, model, smaller, rate, worst, mean in rows:
        assert int(graphs) + int(hyperprior) < int(model) and float(smaller.strip()[:-1]) > 1
        assert float(worst) <= float(mean)
    (_, _, shaw, full_hyperprior, *_), (_, _, _, coarse_hyperprior, *_), (_, _, onnx, *_) = rows
    assert int(coarse_hyperprior) < int(full_hyperprior) and int(shaw) < int(onnx)
