"""Decoder fine-tuning on the symbols the shipped encoder writes (imgcodec.train.decoder_tuning)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imgcodec.bitstream import unpack
from imgcodec.codec import codec_of
from imgcodec.train.data import CropSampler
from imgcodec.train.decoder_tuning import (CodedExamples, DecoderTuner, batch_tensors, coded_examples, coded_images,
                                           psnr_by_level)
from imgcodec.train.shae_v9 import ShaeV9
from imgcodec.zoo import default_model


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, 128 + 60 * np.sin(x / 5.0)], axis=-1)
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def test_the_examples_hold_the_symbols_of_the_file_shaec_writes() -> None:
    codec = codec_of(default_model(), threads=1)
    image = _photo(64, 128, 1)
    examples = coded_images(codec, [(image, np.array([0, 6]))])
    assert examples.symbols.shape == (2, codec.gains.shape[1], 4, 8) and examples.symbols.dtype == np.uint8
    assert examples.levels.tolist() == [0, 6]
    for symbols, level in zip(examples.symbols, examples.levels):
        written, _ = codec.decode_symbols(unpack(codec.encode(image, int(level) + 1).data))
        np.testing.assert_array_equal(symbols, written)
    np.testing.assert_array_equal(examples.crops[0], image)


def test_training_crops_are_coded_at_distinct_levels() -> None:
    codec = codec_of(default_model(), threads=1)
    sampler = CropSampler([_photo(128, 128, 2)], 64, seed=0)
    examples = coded_examples(codec, sampler, 2, levels_per_crop=3, seed=5)
    assert len(examples.levels) == 6
    for k in (0, 3):
        assert len(set(examples.levels[k:k + 3].tolist())) == 3
        assert np.array_equal(examples.crops[k], examples.crops[k + 2])


def test_bad_examples_are_refused(tmp_path: Path) -> None:
    codec = codec_of(default_model(), threads=1)
    with pytest.raises(ValueError, match="multiples of 64"):
        coded_images(codec, [(_photo(64, 100, 3), np.array([0]))])
    with pytest.raises(ValueError, match="same length"):
        CodedExamples(np.zeros((2, 64, 64, 3), np.uint8), np.zeros((1, 12, 4, 4), np.uint8), np.zeros(2, np.int64))
    examples = CodedExamples(np.zeros((1, 64, 64, 3), np.uint8), np.ones((1, 12, 4, 4), np.uint8), np.array([1]))
    examples.save(str(tmp_path / "e.npz"))
    loaded = CodedExamples.load(str(tmp_path / "e.npz"))
    assert np.array_equal(loaded.symbols, examples.symbols) and loaded.levels.tolist() == [1]


def _examples_of(model: ShaeV9, count: int) -> CodedExamples:
    """Nearest-rounded symbols of the tiny model (its own encoder) for random 64x64 crops."""
    crops, symbols, levels = [], [], []
    for k in range(count):
        crop = _photo(64, 64, 10 + k)
        level = k % model.log_gain.shape[0]
        y, _ = model.symbols(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255, level)
        crops.append(crop), symbols.append(y.astype(np.uint8)), levels.append(level)
    return CodedExamples(np.stack(crops), np.stack(symbols), np.array(levels))


def test_tuning_moves_only_the_synthesis_and_lowers_the_error(trained_tiny_v9: ShaeV9) -> None:
    model = ShaeV9(trained_tiny_v9.cfg)
    model.load_state_dict(trained_tiny_v9.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    examples = _examples_of(model, 4)
    torch.manual_seed(0)
    tuner = DecoderTuner(model, lr=3e-3, bf16=False)
    start = psnr_by_level(tuner, examples)
    crops, symbols, levels = batch_tensors(examples, np.arange(4))
    first = tuner.step(crops, symbols, levels)
    for _ in range(30):
        last = tuner.step(crops, symbols, levels)
    assert float(last.mean()) < float(first.mean())
    end = psnr_by_level(tuner, examples)
    assert set(end) == {0, 1} and np.mean(list(end.values())) > np.mean(list(start.values()))
    tuned = ("synthesis.", "detail_synthesis.")
    for name, value in model.state_dict().items():
        if not name.startswith(tuned):
            assert torch.equal(value, before[name]), f"{name} moved"
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if k.startswith("synthesis."))


def test_refine_blocks_start_as_identities_and_then_learn(trained_tiny_v9: ShaeV9) -> None:
    from imgcodec.train.decoder_tuning import with_refine_blocks

    grown = with_refine_blocks(trained_tiny_v9, 2)
    assert grown.cfg.refine_blocks == 2 and len(grown.refine) == 2
    examples = _examples_of(grown, 2)
    latent = torch.randn(1, grown.cfg.latent_channels, 4, 4)
    with torch.no_grad():
        assert torch.equal(grown.reconstruct(latent), trained_tiny_v9.reconstruct(latent))
    tuner = DecoderTuner(grown, lr=1e-3, bf16=False, refine_lr=1e-2)
    assert [g["lr"] for g in tuner.optimizer.param_groups] == [1e-3, 1e-2]
    crops, symbols, levels = batch_tensors(examples, np.arange(2))
    for _ in range(3):
        tuner.step(crops, symbols, levels)
    assert float(grown.refine[0].outer.weight.abs().sum()) > 0
    with pytest.raises(ValueError, match="refine_blocks"):
        from imgcodec.config import ShaeV9Config
        ShaeV9Config.from_dict({**grown.cfg.to_dict(), "refine_blocks": -1})
