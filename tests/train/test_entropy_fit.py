"""Fitting the entropy model alone (imgcodec.train.entropy_fit): the transforms stay as they
are, the bits on the training latents fall, and real payloads are measured."""
from __future__ import annotations

import copy

import numpy as np
import torch

from imgcodec.train.entropy_fit import coded_bpp, crop_latents, entropy_parameters, fit_entropy_model
from imgcodec.train.shae_v9 import SOFT_WINDOW


def test_fitting_moves_only_the_entropy_model_and_lowers_its_bits(trained_tiny_v9) -> None:
    model = copy.deepcopy(trained_tiny_v9)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    latents = crop_latents(model, crops, [0, 1])
    assert [level for level, _ in latents] == [0, 1] * 3
    assert latents[0][1].shape == (1, model.cfg.latent_channels, 4, 4)
    fitted = {id(p) for p in entropy_parameters(model)}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    def bits() -> float:
        with torch.no_grad():
            ys = torch.cat([y for _, y in latents])
            return float(model.rate(ys, model.quantizer.windowed(ys, SOFT_WINDOW))[0].mean())

    start = bits()
    fit_entropy_model(model, latents, steps=30, lr=1e-2, batch=4, seed=0)
    assert bits() < start and not model.training
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if id(p) not in fitted)  # transforms
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if id(p) in fitted)
    bpp = coded_bpp(model, latents, [0, 1])
    assert set(bpp) == {0, 1} and all(0 < v < 16 for v in bpp.values())
