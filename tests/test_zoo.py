"""The installed models: package data, decode-only retired models, the version."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import imgcodec
from imgcodec.codec import compress
from imgcodec.errors import ModelNotFoundError
from imgcodec.zoo import default_model, find_model, list_models, models_dir


def test_models_are_package_data() -> None:
    assert models_dir().parent == __import__("pathlib").Path(imgcodec.__file__).parent
    assert (models_dir() / "manifest.json").exists()


def test_version_minor_is_the_default_models_generation() -> None:
    generation = re.fullmatch(r"shae-v(\d+)", default_model().name)
    assert generation, default_model().name
    assert imgcodec.__version__.split(".")[1] == generation.group(1)


def test_retired_model_decodes_but_does_not_encode() -> None:
    from imgcodec.codec import codec_of
    from imgcodec.zoo import ENCODER_FILES

    retired = [info for info in list_models() if info.decode_only]
    assert {"shae-v7", "shae-v9-ssim"} <= {info.name for info in retired}  # both architectures
    for info in retired:
        assert not any((info.folder / name).exists() for name in ENCODER_FILES)
        codec = codec_of(info)  # loads and verifies the decoder's files
        with pytest.raises(ModelNotFoundError, match="ships only its decoder"):
            codec.encode(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(ModelNotFoundError, match="ships only its decoder"):
            compress(np.zeros((16, 16, 3), np.uint8), model=info.name)


def test_default_model_encodes() -> None:
    assert not find_model().decode_only


@pytest.fixture
def models_with_ssim_tune(tmp_path, monkeypatch):
    """A models folder with the default model and an "ssim" tune of it (its own files, for the test)."""
    import json

    from imgcodec.zoo import MODELS_ENV

    manifest = json.loads((models_dir() / "manifest.json").read_text())
    default = manifest["default"]
    (tmp_path / default).symlink_to(models_dir() / default)
    tuned = {**manifest["models"][default], "tune": "ssim", "tuned_from": default}
    manifest = {"default": default, "models": {default: manifest["models"][default], f"{default}-ssim": tuned}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    return tmp_path


def test_tuned_model_picks_the_default_or_its_fine_tune(models_with_ssim_tune) -> None:
    from imgcodec.zoo import tuned_model

    default = default_model()
    assert tuned_model("psnr") == default and default.tune == "psnr"
    assert tuned_model("ssim").name == f"{default.name}-ssim"
    with pytest.raises(ModelNotFoundError, match="unknown tune"):
        tuned_model("butteraugli")


def test_tune_of_an_earlier_default_serves_until_the_default_has_its_own(tmp_path, monkeypatch) -> None:
    """A new default ships before its MS-SSIM tune: --tune ssim takes the newest older tune, then
    the default's own once it is installed."""
    import json

    from imgcodec.zoo import MODELS_ENV, tuned_model

    manifest = json.loads((models_dir() / "manifest.json").read_text())
    default = manifest["default"]
    (tmp_path / default).symlink_to(models_dir() / default)
    entry = manifest["models"][default]
    models = {"old-ssim": {**entry, "tune": "ssim", "tuned_from": "old"},
              "older-ssim": {**entry, "tune": "ssim", "tuned_from": "older"},
              "newer-ssim": {**entry, "tune": "ssim", "tuned_from": "newer", "decode_only": True},
              default: entry}
    for name in ("old-ssim", "older-ssim", "newer-ssim"):
        (tmp_path / name).symlink_to(models_dir() / default)
    (tmp_path / "manifest.json").write_text(json.dumps({"default": default, "models": models}))
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    assert tuned_model("ssim").name == "older-ssim"  # the last that encodes
    (tmp_path / f"{default}-ssim").symlink_to(models_dir() / default)
    models = {f"{default}-ssim": {**entry, "tune": "ssim", "tuned_from": default}, **models}
    (tmp_path / "manifest.json").write_text(json.dumps({"default": default, "models": models}))
    assert tuned_model("ssim").name == f"{default}-ssim"


def test_missing_tune_is_a_clear_error() -> None:
    from imgcodec.zoo import TUNES, tuned_model
    from imgcodec.cli import encode

    assert tuple(next(p for p in encode.params if p.name == "tune").type.choices) == TUNES
    if not any(info.tune == "ssim" for info in list_models()):
        with pytest.raises(ModelNotFoundError, match="no model tuned for ssim"):
            tuned_model("ssim")


def test_folder_model_reads_model_json_or_says_why_not(tmp_path: Path) -> None:
    from imgcodec.zoo import folder_model, graph_path

    with pytest.raises(ModelNotFoundError, match="model.json"):
        folder_model(tmp_path)
    (tmp_path / "model.json").write_text('{"model_id": "00112233aabbccdd", "files": {"decoder.shaw": "0"}}')
    info = folder_model(tmp_path)
    assert info.model_id == "00112233aabbccdd" and info.name == tmp_path.name
    assert graph_path(info, "decoder").name == "decoder.shaw" and graph_path(info, "encoder").name == "encoder.onnx"
