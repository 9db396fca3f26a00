"""ONNX models and .shaw files: graphs run from .shaw weights, calibration on sample inputs, the
graph record, and the CLI round trip (imgcodec.weights.onnx_weights, model_files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgcodec.weights import onnx_weights, sensitivity
from imgcodec.weights.codec import WeightCodecConfig, compress_tensors, decompress_record
from imgcodec.weights.container import pack, unpack

RNG = np.random.default_rng(7)
INPUTS = RNG.normal(size=(64, 40)).astype(np.float32)  # 40 sample inputs of 64 values


def _onnx_model(path: Path, weight: np.ndarray, bias: np.ndarray) -> None:
    """y = x @ weight + bias as an ONNX file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weight"], ["xw"]), helper.make_node("Add", ["xw", "bias"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, weight.shape[1]])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_an_onnx_graph_runs_from_shaw_weights_and_calibrates(tmp_path: Path) -> None:
    weight = RNG.normal(0, 0.1, (64, 48)).astype(np.float32)
    bias = RNG.normal(0, 0.1, 48).astype(np.float32)
    _onnx_model(tmp_path / "m.onnx", weight, bias)
    graph, tensors = onnx_weights.split(tmp_path / "m.onnx")
    assert set(tensors) == {"weight", "bias"} and len(graph) < 1000  # the weights left the graph
    x = INPUTS.T[:5].copy()  # 5,64

    def run(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
        return onnx_weights.session_with(graph, weights).run(None, {"x": x})

    assert np.allclose(run(tensors)[0], x @ weight + bias, atol=1e-5)
    measured = sensitivity.measure(tensors, ["weight"], run, sensitivity.mean_squared_error)
    shaw = pack(compress_tensors({k: (v, "<f4") for k, v in tensors.items()},
                                 WeightCodecConfig(target_bits_per_weight=4.0), measured))
    decoded = {r.name: decompress_record(r) for r in unpack(shaw)}
    assert np.array_equal(decoded["bias"], bias)  # small tensors stay exact
    out = onnx_weights.session(graph, shaw).run(None, {"x": x})[0]
    assert np.allclose(out, x @ decoded["weight"] + bias, atol=1e-5)
    assert not np.array_equal(decoded["weight"], weight)  # it was quantized


def _two_input_model(path: Path, a: np.ndarray, b: np.ndarray) -> None:
    """y = x1 @ a + x2 @ b as an ONNX file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x1", "a"], ["y1"]), helper.make_node("MatMul", ["x2", "b"], ["y2"]),
         helper.make_node("Add", ["y1", "y2"], ["y"])],
        "two", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, a.shape[0]]) for n in ("x1", "x2")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, a.shape[1]])],
        [numpy_helper.from_array(a, "a"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_cli_calibration_spends_bits_where_the_outputs_need_them(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from imgcodec.cli import main

    a, b = (RNG.normal(0, 0.1, (64, 48)).astype(np.float32) for _ in range(2))
    _two_input_model(tmp_path / "m.onnx", a, b)
    x1 = RNG.normal(size=(32, 64)).astype(np.float32)
    x2 = 10 * RNG.normal(size=(32, 64)).astype(np.float32)  # b's input is 10x larger: b matters 100x more
    np.savez(tmp_path / "calib.npz", x1=x1, x2=x2)
    runner = CliRunner()
    plain = runner.invoke(main, ["weights", "compress", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "plain.shaw"),
                                 "--bits-per-weight", "3"])
    calibrated = runner.invoke(main, ["weights", "compress", str(tmp_path / "m.onnx"), "-o",
                                      str(tmp_path / "cal.shaw"), "--bits-per-weight", "3",
                                      "--calibration", str(tmp_path / "calib.npz")])
    assert plain.exit_code == 0 and calibrated.exit_code == 0, calibrated.output
    assert "calibrated" in calibrated.output and "calibrated" not in plain.output

    def output_error(name: str) -> float:
        w = {r.name: decompress_record(r) for r in unpack((tmp_path / name).read_bytes())}
        return float(np.mean((x1 @ w["a"] + x2 @ w["b"] - (x1 @ a + x2 @ b)) ** 2))

    sizes = [(tmp_path / n).stat().st_size for n in ("plain.shaw", "cal.shaw")]
    assert abs(sizes[0] - sizes[1]) < 0.1 * sizes[0]
    assert output_error("cal.shaw") < 0.7 * output_error("plain.shaw")

    np.savez(tmp_path / "wrong.npz", x1=x1)
    wrong = runner.invoke(main, ["weights", "compress", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "w.shaw"),
                                 "--calibration", str(tmp_path / "wrong.npz")])
    assert wrong.exit_code == 1 and "the model takes x1, x2" in wrong.output and "Traceback" not in wrong.output
    np.savez(tmp_path / "shape.npz", x1=x1[:, :10], x2=x2)
    bad_shape = runner.invoke(main, ["weights", "compress", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "s.shaw"),
                                     "--calibration", str(tmp_path / "shape.npz")])
    assert bad_shape.exit_code == 1 and "do not fit the model" in bad_shape.output
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    junk = runner.invoke(main, ["weights", "compress", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "j.shaw"),
                                "--calibration", str(tmp_path / "junk.npz")])
    assert junk.exit_code == 1 and "not a readable .npz" in junk.output
    torch_file = tmp_path / "m.pt"
    torch_file.write_bytes(b"")
    not_onnx = runner.invoke(main, ["weights", "compress", str(torch_file), "--calibration", str(tmp_path / "calib.npz")])
    assert not_onnx.exit_code == 1 and "needs an .onnx model" in not_onnx.output
    assert not any(tmp_path.glob("[wsj].shaw"))  # nothing written on errors


def test_an_onnx_model_round_trips_through_the_cli_with_its_graph(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch
    from click.testing import CliRunner

    from imgcodec.cli import main
    from imgcodec.weights.container import CODEC_GRAPH

    weight = RNG.normal(0, 0.1, (64, 48)).astype(np.float32)
    bias = RNG.normal(0, 0.1, 48).astype(np.float32)
    _onnx_model(tmp_path / "m.onnx", weight, bias)
    runner = CliRunner()
    result = runner.invoke(main, ["weights", "compress", str(tmp_path / "m.onnx"), "--bits-per-weight", "4"])
    assert result.exit_code == 0, result.output
    data = (tmp_path / "m.shaw").read_bytes()
    assert data[4] == 3  # format version 3: it carries a graph
    records = unpack(data)
    assert [r.codec for r in records].count(CODEC_GRAPH) == 1
    info = runner.invoke(main, ["weights", "info", str(tmp_path / "m.shaw")])
    assert info.exit_code == 0 and "graph" in info.output

    result = runner.invoke(main, ["weights", "decompress", str(tmp_path / "m.shaw")])
    assert result.exit_code == 0 and "and the graph" in result.output, result.output
    decoded = {r.name: decompress_record(r) for r in records if r.codec != CODEC_GRAPH}
    x = INPUTS.T[:5].copy()
    session_ = ort.InferenceSession(str(tmp_path / "m.decoded.onnx"), providers=["CPUExecutionProvider"])
    assert np.allclose(session_.run(None, {"x": x})[0], x @ decoded["weight"] + decoded["bias"], atol=1e-5)
    assert np.allclose(onnx_weights.session(None, data).run(None, {"x": x})[0], session_.run(None, {"x": x})[0])

    result = runner.invoke(main, ["weights", "decompress", str(tmp_path / "m.shaw"), "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 0
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(state) == {"weight", "bias"}  # the graph is not a tensor

    torch.save({"w": torch.from_numpy(weight)}, tmp_path / "t.pt")
    assert runner.invoke(main, ["weights", "compress", str(tmp_path / "t.pt")]).exit_code == 0
    assert (tmp_path / "t.shaw").read_bytes()[4] == 2  # no graph: still version 2
    refused = runner.invoke(main, ["weights", "decompress", str(tmp_path / "t.shaw"), "-o", str(tmp_path / "t.onnx")])
    assert refused.exit_code == 1 and "carries no ONNX graph" in refused.output
    assert not (tmp_path / "t.onnx").exists()
    with pytest.raises(Exception, match="carries no graph"):
        onnx_weights.session(None, (tmp_path / "t.shaw").read_bytes())


def test_graph_records_are_checked() -> None:
    import struct
    import zlib

    from imgcodec.errors import FormatError
    from imgcodec.weights.container import graph_record

    with pytest.raises(ValueError, match="one graph at most"):
        pack([graph_record(b"a"), graph_record(b"b")])
    data = bytearray(pack([graph_record(b"graph bytes")]))
    data[4] = 2  # a version-2 file cannot hold codec 4
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    with pytest.raises(FormatError, match="unknown dtype, codec or rank"):
        unpack(bytes(data))
    body = pack([graph_record(b"a")])[:-4]
    head, record = body[:10], body[10:]
    twice = head[:6] + struct.pack("<I", 2) + record + record
    with pytest.raises(FormatError, match="second graph record"):
        unpack(twice + struct.pack("<I", zlib.crc32(twice)))
