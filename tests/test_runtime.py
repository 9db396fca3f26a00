"""imgcodec.runtime's tiling rule (the tiled results themselves: tests/train/test_export.py)."""
from __future__ import annotations

from pathlib import Path

from imgcodec.runtime import TransformRuntime


def test_latents_up_to_the_single_tile_limit_run_whole_and_larger_ones_in_tiles() -> None:
    # shae-v9's setting: whole up to 88 latents a side, else bands of 48-latent tiles
    runtime = TransformRuntime(None, Path("unused.onnx"), tile_latents=48, margin_latents=4, downscale=16,
                               single_tile_latents=88)
    assert runtime.band_count(88, 88) == 1
    assert runtime.band_count(89, 10) == 2 and runtime.band_count(10, 89) == 1  # bands are rows of tiles
    assert runtime.band_count(250, 375) == 6
    # without a limit, one tile means the tile and its margins
    default = TransformRuntime(None, Path("unused.onnx"), tile_latents=48, margin_latents=4)
    assert default.band_count(56, 56) == 1 and default.band_count(57, 56) == 2
