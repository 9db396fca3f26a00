"""Shared fixtures: a tiny model configuration that trains and exports in seconds, and shae-v9
entropy models written in the layouts of earlier releases."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from imgcodec.config import ModelConfig
from imgcodec.gaussian_tables import YTables
from imgcodec.hyperprior import HyperpriorTables
from imgcodec.int_arrays import byte_planes, from_zigzag_bytes


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(latent_channels=6, num_centers=5, center_range=2.0, stage4_channels=8,
                       stage8_channels=12, prior_hidden=4, context_clip=1, synthesis_blocks8=1,
                       synthesis_blocks4=1, analysis_blocks8=1, analysis_blocks4=1, refine_channels=4,
                       lambdas=(0.01, 0.05, 0.2))


def write_earlier_tables(tables: HyperpriorTables, path: Path, release: str) -> None:
    """tables as hyperprior.npz of an earlier release: "0.11.2" (y's tables as counts, their
    differences along the mean axis in zigzag bytes) or "0.11.1" (the same with every 16-bit
    array in byte planes). Later readers must still load both."""
    dataclasses.replace(tables, y_tables=YTables.whole(tables.y_counts)).save(path)  # no grid: counts
    if release == "0.11.1":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        for key in [k[:-len(".zigzag")] for k in arrays if k.endswith(".zigzag")]:
            arrays[key] = byte_planes(from_zigzag_bytes(arrays.pop(f"{key}.zigzag"), arrays.pop(f"{key}.escapes"),
                                                        np.uint16))
        np.savez_compressed(path, **arrays)
    elif release != "0.11.2":
        raise ValueError(f"no layout of release {release}")


@pytest.fixture
def earlier_tables() -> Callable[[HyperpriorTables, Path, str], None]:
    """write_earlier_tables, for tests that check readers and the repacking script."""
    return write_earlier_tables
