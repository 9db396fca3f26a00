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
from .container import unpack
from .codec import decompress_record

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


def session(graph: bytes, shaw: bytes, options: Any | None = None) -> Any:
    """An onnxruntime session of `graph` (from split) with the weights decoded from `shaw`."""
    return session_with(graph, {record.name: decompress_record(record) for record in unpack(shaw)}, options)


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
