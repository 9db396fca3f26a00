"""ONNX graphs whose weights travel as a .shaw file: split at export, joined when a session opens;
and the calibration of an ONNX model's sensitivities on sample inputs.

`split` (export side, needs the onnx package) turns a model into a graph whose initializers are
marked as external data, plus the tensors themselves; shaec's weight codec compresses those into
a .shaw file. `session` (run time, onnxruntime only) decodes the .shaw file and hands the arrays
to onnxruntime through SessionOptions.add_external_initializers (available since onnxruntime
1.12), so no weights file is ever written back to disk. The .shaw decode is exact float32 on any
machine (imgcodec.weights.codec), so the same bytes give the same network everywhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShaecError
from . import sensitivity
from .model_files import decode_tensors, read_model

#: The external-data location the graph's initializers point at; nothing is read from it.
LOCATION = "weights.shaw"


def split(onnx_path: Path) -> tuple[bytes, dict[str, np.ndarray]]:
    """(the graph with every initializer marked external, name -> float32/int array)."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(onnx_path))
    tensors = {}
    offset = 0
    for initializer in model.graph.initializer:
        array = numpy_helper.to_array(initializer)
        tensors[initializer.name] = array
        set_external_data(initializer, LOCATION, offset=offset, length=array.nbytes)
        offset += array.nbytes
        initializer.ClearField("raw_data")
        for field in ("float_data", "int64_data", "int32_data", "double_data"):
            initializer.ClearField(field)
        initializer.data_location = onnx.TensorProto.EXTERNAL
    return model.SerializeToString(), tensors


def session(graph: bytes | None, shaw: bytes, options: Any | None = None) -> Any:
    """An onnxruntime session of `graph` (from split; None: the graph the .shaw file carries)
    with the weights decoded from `shaw`."""
    carried, tensors = read_model(shaw)
    graph = graph if graph is not None else carried
    if graph is None:
        raise ShaecError("this .shaw file carries no graph (it was not compressed from an ONNX model)")
    return session_with(graph, decode_tensors(tensors), options)


def join(graph: bytes, weights: dict[str, np.ndarray]) -> bytes:
    """A self-contained ONNX model: `graph` (from split) with these arrays as its initializers."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ShaecError("writing .onnx models needs the onnx package: pip install 'shaec[train]'") from None

    model = onnx.load_model_from_string(graph)
    for initializer in model.graph.initializer:
        if initializer.name not in weights:
            raise ShaecError(f"the .shaw file lacks the graph's initializer {initializer.name!r}")
        if initializer.data_type == onnx.TensorProto.BFLOAT16:
            raise ShaecError(f"bfloat16 initializer {initializer.name!r}: writing those back to ONNX is not supported")
        initializer.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(weights[initializer.name]), initializer.name))
    return model.SerializeToString()


def session_with(graph: bytes, weights: dict[str, np.ndarray], options: Any | None = None) -> Any:
    """An onnxruntime session of `graph` (from split) with these arrays as its initializers."""
    import onnxruntime as ort

    options = options or ort.SessionOptions()
    values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a)) for a in weights.values()]
    options.add_external_initializers(list(weights), values)
    return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


def calibrate(onnx_path: Path, inputs: dict[str, np.ndarray], names: list[str]) -> dict[str, float]:
    """Sensitivity of each named initializer (imgcodec.weights.sensitivity) on sample inputs
    (graph input name -> batch). The error is the squared change of every output relative to
    that output's mean square, summed over outputs, so outputs of any scale count alike."""
    graph, tensors = split(onnx_path)

    def run(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
        session_ = session_with(graph, weights)
        expected = {i.name for i in session_.get_inputs()}
        if set(inputs) != expected:
            raise ShaecError(f"the calibration inputs are named {', '.join(sorted(inputs)) or 'nothing'}; "
                             f"the model takes {', '.join(sorted(expected))}")
        try:
            return session_.run(None, inputs)
        except Exception as exc:  # onnxruntime's InvalidArgument, Fail, ...
            raise ShaecError(f"the calibration inputs do not fit the model: {str(exc).splitlines()[0][:200]}") from None

    def error(outputs: sensitivity.Outputs, reference: sensitivity.Outputs) -> float:
        return float(sum(np.mean(np.square(o.astype(np.float64) - r)) / max(float(np.mean(np.square(r, dtype=np.float64))), 1e-30)
                         for o, r in zip(outputs, reference)))

    return sensitivity.measure(tensors, names, run, error)
