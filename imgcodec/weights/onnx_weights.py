"""ONNX graphs whose weights travel as a .shaw file: split at export, joined when a session opens.

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
