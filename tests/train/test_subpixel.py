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


def test_shipped_shae_v9_decoders_are_in_the_fast_layout():
    """scripts/subpixel_decoder.py rewrote them; export does it for every new shae-v9: no
    transposed convolution, every shuffle in DCR mode, the last layer folded (a 4x4 shuffle)."""
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
        shuffles = [{a.name: a for a in n.attribute} for n in graph.graph.node if n.op_type == "DepthToSpace"]
        assert all(s["mode"].s == b"DCR" for s in shuffles), info.name
        assert sorted(s["blocksize"].i for s in shuffles) == [2, 2, 4, 16], info.name


def _synthesis_tail(channels: int = 6, out: int = 3) -> torch.nn.Module:
    """shae-v9's synthesis in small: transposed convolutions with an inverse GDN between, the
    last one to `out` channels."""
    from imgcodec.train.transforms import GDN

    torch.manual_seed(0)
    gdn = GDN(channels, inverse=True)
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand(channels, channels))
    return torch.nn.Sequential(torch.nn.ConvTranspose2d(5, channels, 5, 2, 2, 1), GDN(channels, inverse=True),
                               torch.nn.ConvTranspose2d(channels, channels, 5, 2, 2, 1), gdn,
                               torch.nn.ConvTranspose2d(channels, out, 5, 2, 2, 1))


@pytest.mark.parametrize("out, folded", [(3, True), (8, False)])
def test_faster_layout_computes_the_same_function(out: int, folded: bool):
    """Phase convolutions without the zero taps, DepthToSpace in DCR mode, and (for a thin last
    layer after a GDN) the last layer reading the phases of the one before: the same outputs."""
    from imgcodec.train.subpixel import faster_layout

    layers = _synthesis_tail(out=out)
    model = _graph(layers, 5)
    x = np.random.default_rng(1).standard_normal((1, 5, 9, 11)).astype(np.float32)
    assert rewrite_transposed_convolutions(model) == 3
    before = _run(model, x)
    sources = faster_layout(model)
    onnx.checker.check_model(model)
    after = _run(model, x)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * np.abs(before).max())
    shuffles = [n for n in model.graph.node if n.op_type == "DepthToSpace"]
    assert all(a.s == b"DCR" for n in shuffles for a in n.attribute if a.name == "mode")
    blocks = sorted(a.i for n in shuffles for a in n.attribute if a.name == "blocksize")
    assert blocks == ([2, 4] if folded else [2, 2, 2])
    # folded: the GDN and the last layer run phase by phase, their parts summed
    assert any(n.op_type == "Sum" for n in model.graph.node) == folded
    # every new tensor holds values of the one it names (a phase reads a subset of the taps)
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert sources and all(name in initializers for name in sources)
    for name, source in sources.items():
        if name.endswith(".phase0") and "weight" in name:
            assert initializers[name].shape[2:] == (3, 3)  # phase (0, 0) reads all 9 taps
        if name.endswith(".phase3") and "weight" in name:
            assert initializers[name].shape[2:] == (2, 2)  # phase (1, 1) reads 4
    assert faster_layout(model) == {}  # nothing left to rewrite


def test_faster_layout_reorders_other_strides_for_dcr():
    """The residual stage's 16x16 blocks: one convolution, its channels reordered, DCR mode."""
    from imgcodec.train.subpixel import faster_layout

    torch.manual_seed(0)
    model = _graph(torch.nn.ConvTranspose2d(5, 3, 16, 16, bias=False), 5)
    x = np.random.default_rng(2).standard_normal((1, 5, 3, 4)).astype(np.float32)
    rewrite_transposed_convolutions(model)
    before = _run(model, x)
    (weight,) = [n.input[1] for n in model.graph.node if n.op_type == "Conv"]
    assert faster_layout(model) == {f"{weight}.dcr": weight}
    (conv,) = [n for n in model.graph.node if n.op_type == "Conv"]
    (shuffle,) = [n for n in model.graph.node if n.op_type == "DepthToSpace"]
    assert conv.input[1] == f"{weight}.dcr" and [a.s for a in shuffle.attribute if a.name == "mode"] == [b"DCR"]
    np.testing.assert_array_equal(_run(model, x), before)  # the same sums, channels moved


def test_subpixel_decoder_moves_stored_weights_exactly(tmp_path):
    """scripts/subpixel_decoder.py on a .shaw decoder in the old layout: quantized tensors keep
    their steps and values, lossless ones stay lossless, the output is the old one's."""
    import importlib.util
    from pathlib import Path

    from imgcodec.train.export import CONTEXT_ALPHABET, graph_weights
    from imgcodec.weights.codec import WeightCodecConfig, lossless_record
    from imgcodec.weights.container import CODEC_EXACT16, CODEC_EXACT32
    from imgcodec.weights.model_files import decode_tensors, read_model
    from imgcodec.weights.onnx_weights import session

    spec = importlib.util.spec_from_file_location(
        "subpixel_decoder", Path(__file__).resolve().parents[2] / "scripts" / "subpixel_decoder.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model = _graph(_synthesis_tail(), 5)
    rewrite_transposed_convolutions(model)
    path = tmp_path / "decoder.onnx"
    onnx.save(model, str(path))
    x = np.random.default_rng(3).standard_normal((1, 5, 9, 11)).astype(np.float32)
    for bits in (6.0, None):
        old = graph_weights(path, bits, None)
        new, moved = script.rewrite_shaw(old)
        assert moved > 0 and script.rewrite_shaw(new)[1] == 0
        old_records = {r.name: r for r in read_model(old)[1]}
        new_records = {r.name: r for r in read_model(new)[1]}
        old_values, new_values = decode_tensors(list(old_records.values())), decode_tensors(list(new_records.values()))
        lossless_moves = 0
        for name, record in new_records.items():
            if name in old_records:  # kept as it was stored
                assert record.payload == old_records[name].payload and record.codec == old_records[name].codec
            else:
                source = old_records[name.rsplit(".", 1)[0]]
                if source.codec in (CODEC_EXACT16, CODEC_EXACT32):  # lossless: as the lossless codec stores it
                    expected = lossless_record(name, new_values[name], source.dtype,
                                               WeightCodecConfig(lossless=True, context_alphabet=CONTEXT_ALPHABET))
                    assert (record.codec, record.payload, record.low) == (expected.codec, expected.payload, expected.low)
                    lossless_moves += 1
                else:
                    assert record.codec == source.codec and record.step == source.step
                assert set(np.unique(new_values[name])) <= set(np.unique(old_values[source.name])) | {0.0}
        assert (lossless_moves > 0) == (bits is None)  # float32 weights stored losslessly are moved so
        outputs = [session(None, data).run(None, {"x": x})[0] for data in (old, new)]
        np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-5 * np.abs(outputs[0]).max())
