"""Shared fixtures of the training tests: a tiny shae-v9 with some spread in its weights."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from imgcodec.config import ShaeV9Config
from imgcodec.train.shae_v9 import ShaeV9

TINY_V9 = {"channels": 8, "latent_channels": 12, "hyper_channels": 4, "num_centers": 9, "hyper_num_centers": 5,
           "groups": [2, 4, 6], "param_features": 8, "context_features": 4, "lambdas": [0.01, 0.1]}


def _trained(config: dict) -> ShaeV9:
    """A tiny shae-v9 after a few optimiser steps (so its tables differ from the initial ones), in eval mode."""
    torch.manual_seed(3)
    model = ShaeV9(ShaeV9Config.from_dict(config))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    x = torch.rand(2, 3, 128, 128)
    for _ in range(3):
        out = model(x, torch.tensor([0, 1]))
        loss = out["bits"].mean() / 1000 + ((out["x_hat"] - x) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_tiny_v9() -> ShaeV9:
    """TINY_V9 after a few optimiser steps, in eval mode."""
    return _trained(TINY_V9)


@pytest.fixture(scope="session")
def trained_tiny_v9_spatial() -> ShaeV9:
    """TINY_V9 with a spatial (checkerboard) context of 3 features, after a few optimiser steps."""
    return _trained({**TINY_V9, "spatial_features": 3})


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


#: Decodes tmp folder's payload.bin with its tables.npz in a fresh process and compares with y.npy
#: (argv: folder, latent height, latent width).
FRESH_DECODE = (
    "import sys, numpy as np\n"
    "from pathlib import Path\n"
    "from imgcodec.hyperprior import HyperpriorTables\n"
    "folder = Path(sys.argv[1])\n"
    "tables = HyperpriorTables.load(folder / 'tables.npz')\n"
    "y, _ = tables.decode((folder / 'payload.bin').read_bytes(), int(sys.argv[2]), int(sys.argv[3]))\n"
    "assert np.array_equal(y, np.load(folder / 'y.npy'))\n"
)


def _decode_in_fresh_processes(folder: Path, height: int, width: int) -> None:
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", FRESH_DECODE, str(folder), str(height), str(width)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr


@pytest.fixture()
def decode_in_fresh_processes() -> Callable[[Path, int, int], None]:
    """(folder, latent height, latent width) -> runs FRESH_DECODE with 1 and then 2 BLAS threads:
    the integer networks must pick the same tables in every process."""
    return _decode_in_fresh_processes
