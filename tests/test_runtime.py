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


def test_sessions_allocate_from_one_shared_arena() -> None:
    """Every OnnxGraph session of a process uses the arena registered in onnxruntime's
    environment (registered once; asking again changes nothing)."""
    from imgcodec.runtime import OnnxGraph, shared_cpu_arena
    from imgcodec.zoo import default_model, graph_path

    assert shared_cpu_arena() and shared_cpu_arena()
    graph = OnnxGraph(graph_path(default_model(), "hyper_encoder"), threads=1)
    options = graph.session.get_session_options()
    assert options.get_session_config_entry("session.use_env_allocators") == "1"
