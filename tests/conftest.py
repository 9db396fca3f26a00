"""Shared fixtures: a tiny model configuration that trains and exports in seconds."""
from __future__ import annotations

import pytest

from imgcodec.config import ModelConfig


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(latent_channels=6, num_centers=5, center_range=2.0, stage4_channels=8,
                       stage8_channels=12, prior_hidden=4, context_clip=1, synthesis_blocks8=1,
                       synthesis_blocks4=1, analysis_blocks8=1, analysis_blocks4=1, refine_channels=4,
                       lambdas=(0.01, 0.05, 0.2))
