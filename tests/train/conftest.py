"""Shared fixtures of the training tests: a tiny shae-v9 with some spread in its weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgcodec.config import ShaeV9Config
from imgcodec.train.shae_v9 import ShaeV9

TINY_V9 = {"channels": 8, "latent_channels": 12, "hyper_channels": 4, "num_centers": 9, "hyper_num_centers": 5,
           "groups": [2, 4, 6], "param_features": 8, "context_features": 4, "lambdas": [0.01, 0.1]}


@pytest.fixture(scope="session")
def trained_tiny_v9() -> ShaeV9:
    """TINY_V9 after a few optimiser steps (so its tables differ from the initial ones), in eval mode."""
    torch.manual_seed(3)
    model = ShaeV9(ShaeV9Config.from_dict(TINY_V9))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    x = torch.rand(2, 3, 128, 128)
    for _ in range(3):
        out = model(x, torch.tensor([0, 1]))
        loss = out["bits"].mean() / 1000 + ((out["x_hat"] - x) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture()
def tiny_v9_config() -> dict:
    """TINY_V9 as a fresh dict (a test may change it)."""
    return {**TINY_V9, "groups": list(TINY_V9["groups"]), "lambdas": list(TINY_V9["lambdas"])}


@pytest.fixture()
def photo_folder(tmp_path: Path) -> Path:
    """A --data folder for train.py: two noise photos in train/, one in val/ (128x64)."""
    for split, count in (("train", 2), ("val", 1)):
        (tmp_path / split).mkdir()
        for k in range(count):
            rng = np.random.default_rng(k)
            Image.fromarray(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)).save(tmp_path / split / f"{k}.png")
    return tmp_path
