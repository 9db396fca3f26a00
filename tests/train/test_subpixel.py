"""imgcodec.train.subpixel: transposed convolutions re-expressed as Conv + DepthToSpace."""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from imgcodec.train.subpixel import rewrite_transposed_convolutions, subpixel_kernel


def _graph(module: torch.nn.Module, channels: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module.eval(), (torch.zeros(1, channels, 6, 7),), buffer, input_names=["x"],
                          output_names=["y"], opset_version=17, dynamic_axes={"x": {2: "h", 3: "w"}},
                          dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("kernel, stride, padding, output_padding, bias", [
    (5, 2, 2, 1, True),    # shae-v9's synthesis layers
    (16, 16, 0, 0, False),  # its residual stage: one 16x16 block per latent
    (3, 2, 1, 1, True),
    (4, 2, 1, 0, True),
    (6, 3, 2, 1, True),
])
def test_rewritten_graph_computes_the_same_function(kernel, stride, padding, output_padding, bias):
    torch.manual_seed(0)
    layers = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(5, 4, kernel, stride, padding, output_padding, bias=bias),
        torch.nn.LeakyReLU(0.1),
        torch.nn.ConvTranspose2d(4, 3, kernel, stride, padding, output_padding, bias=bias))
    model = _graph(layers, 5)
    x = np.random.default_rng(1).standard_normal((1, 5, 9, 11)).astype(np.float32)
    before = _run(model, x)
    assert rewrite_transposed_convolutions(model) == 2
    onnx.checker.check_model(model)
    assert {node.op_type for node in model.graph.node} >= {"Conv", "DepthToSpace"}
    assert "ConvTranspose" not in {node.op_type for node in model.graph.node}
    after = _run(model, x)
    assert after.shape == before.shape == (1, 3, 9 * stride * stride, 11 * stride * stride)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * np.abs(before).max())
    with torch.no_grad():
        np.testing.assert_allclose(after, layers(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-5 * np.abs(before).max())


def test_a_kernel_phase_reads_its_taps():
    """Stride 2, kernel 5, padding 2: output 2m reads taps 4, 2, 0 at inputs m-1, m, m+1 and
    output 2m+1 taps 3, 1 at m, m+1 (zero at m-1)."""
    weight = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    kernel, before, after = subpixel_kernel(weight, 2, 2)
    assert kernel.shape == (4, 1, 3, 3) and (before, after) == (1, 1)
    np.testing.assert_array_equal(kernel[0, 0], weight[0, 0][[4, 2, 0]][:, [4, 2, 0]])
    np.testing.assert_array_equal(kernel[3, 0, 1:, 1:], weight[0, 0][[3, 1]][:, [3, 1]])
    assert not kernel[3, 0, 0].any() and not kernel[3, 0, :, 0].any()


@pytest.mark.parametrize("layer", [
    torch.nn.ConvTranspose2d(2, 2, 5, 2, 2),  # no output padding: 2H - 1 pixels, not a sub-pixel layer
    torch.nn.ConvTranspose2d(2, 2, 5, 2, 2, 1, groups=2),
    torch.nn.ConvTranspose2d(2, 2, 5, 2, 2, 1, dilation=2),
])
def test_other_transposed_convolutions_are_refused_before_anything_changes(layer):
    model = _graph(torch.nn.Sequential(torch.nn.ConvTranspose2d(2, 2, 4, 2, 1), layer), 2)
    before = model.SerializeToString()
    with pytest.raises(ValueError, match="only plain 2D transposed convolutions"):
        rewrite_transposed_convolutions(model)
    assert model.SerializeToString() == before


def test_shipped_shae_v9_decoders_have_no_transposed_convolutions():
    """scripts/subpixel_decoder.py rewrote them; export does it for every new shae-v9."""
    from imgcodec.weights.model_files import read_model
    from imgcodec.zoo import graph_path, list_models

    shipped = [info for info in list_models() if info.meta.get("architecture") == "shae-v9"]
    assert shipped
    for info in shipped:
        path = graph_path(info, "decoder")
        if path.suffix == ".shaw":  # the graph travels inside, its weights compressed
            graph = onnx.load_from_string(read_model(path.read_bytes())[0])
        else:
            graph = onnx.load(str(path), load_external_data=False)
        assert "ConvTranspose" not in {node.op_type for node in graph.graph.node}, info.name
