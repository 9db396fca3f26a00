"""Sensitivity-weighted bit allocation: the measurement, the steps it gives, and ONNX graphs run
from .shaw weights (imgcodec.weights.sensitivity, codec.unit_steps, onnx_weights)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgcodec.weights import onnx_weights, sensitivity
from imgcodec.weights.codec import WeightCodecConfig, compress_tensors, decompress_record
from imgcodec.weights.container import pack, unpack

RNG = np.random.default_rng(5)
INPUTS = RNG.normal(size=(64, 40)).astype(np.float32)  # 40 sample inputs of 64 values
GAIN = 10.0  # the second layer's output counts GAIN^2 = 100 times more


def _run(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Two parallel linear maps of the same inputs, the second amplified."""
    return [weights["a"] @ INPUTS, GAIN * (weights["b"] @ INPUTS)]


def _tensors() -> dict[str, np.ndarray]:
    return {"a": RNG.normal(0, 0.05, (96, 64)).astype(np.float32), "b": RNG.normal(0, 0.05, (96, 64)).astype(np.float32)}


def test_sensitivity_of_a_linear_map_is_its_input_energy() -> None:
    # Noise E of variance v per weight in W gives E @ X: per output value v * mean ||x||^2; the
    # mean squared error averages the two equal-sized outputs.
    tensors = _tensors()
    before = {k: v.copy() for k, v in tensors.items()}
    measured = sensitivity.measure(tensors, ["a", "b"], _run, sensitivity.mean_squared_error)
    assert all(np.array_equal(tensors[k], before[k]) for k in tensors)  # the caller's arrays are untouched
    energy = float(np.mean(np.sum(INPUTS.astype(np.float64) ** 2, axis=0)))
    assert measured["a"] == pytest.approx(energy / 2, rel=0.1)
    assert measured["b"] == pytest.approx(GAIN ** 2 * energy / 2, rel=0.1)


def test_sensitive_tensors_get_finer_steps_and_the_output_error_drops() -> None:
    tensors = _tensors()
    measured = sensitivity.measure(tensors, ["a", "b"], _run, sensitivity.mean_squared_error)
    named = {k: (v, "<f4") for k, v in tensors.items()}
    config = WeightCodecConfig(target_bits_per_weight=3.0)
    by_rms = {r.name: r for r in compress_tensors(named, config)}
    weighted = {r.name: r for r in compress_tensors(named, config, measured)}
    # Optimal steps go as sqrt(n / g): b, 100 times as sensitive, gets a 10 times finer step.
    assert weighted["a"].step / weighted["b"].step == pytest.approx(np.sqrt(measured["b"] / measured["a"]), rel=0.01)
    assert by_rms["a"].step / by_rms["b"].step == pytest.approx(1.0, rel=0.1)

    def output_error(records: dict) -> float:
        return sensitivity.mean_squared_error(_run({k: decompress_record(r) for k, r in records.items()}), _run(tensors))

    def bits(records: dict) -> float:
        return 8 * sum(len(r.payload) for r in records.values()) / sum(a.size for a in tensors.values())

    assert bits(weighted) == pytest.approx(3.0, abs=0.15) and bits(by_rms) == pytest.approx(3.0, abs=0.15)
    assert output_error(weighted) < 0.6 * output_error(by_rms)


def test_sensitivities_must_cover_every_quantized_tensor_and_be_positive() -> None:
    named = {k: (v, "<f4") for k, v in _tensors().items()}
    with pytest.raises(ValueError, match="no sensitivity for b"):
        compress_tensors(named, WeightCodecConfig(), {"a": 1.0})
    with pytest.raises(ValueError, match="finite and positive: a"):
        compress_tensors(named, WeightCodecConfig(), {"a": 0.0, "b": 1.0})


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
