"""Reading model files into named numpy arrays and writing them back (PyTorch, ONNX, safetensors).

The only module of imgcodec.weights that imports torch (and onnx, for .onnx inputs): both come
with the `train` extra, and only for those files; safetensors files need numpy alone
(imgcodec.weights.safetensors_files).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShaecError
from .container import DTYPE_CODES

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ShaecError("PyTorch files need PyTorch: pip install 'shaec[train]' (safetensors files need "
                         "nothing more: write -o NAME.safetensors)") from None
    return torch


def _state_dict_of(obj: Any) -> dict[str, Any]:
    """A state_dict, or the one inside a training checkpoint."""
    torch = _torch()
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if key in obj:
                return _state_dict_of(obj[key])
    raise ShaecError("no state_dict found (expected a dict of tensors, or a checkpoint holding one under "
                     f"one of {', '.join(STATE_DICT_KEYS)})")


def read_tensors(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    """name -> (values, dtype name) of a PyTorch state_dict / checkpoint, a safetensors file or an
    ONNX model's initializers."""
    from .safetensors_files import is_index, is_safetensors, read_safetensors, read_sharded

    if is_safetensors(path):
        return read_sharded(path) if is_index(path) else read_safetensors(path)
    if path.suffix.lower() == ".onnx":
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            raise ShaecError("reading .onnx models needs the onnx package: pip install 'shaec[train]'") from None
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError and others
            raise ShaecError(f"not an ONNX model ({type(exc).__name__})") from None
        out = {}
        for init in model.graph.initializer:
            array = numpy_helper.to_array(init)
            out[init.name] = (array, dtype_name(array.dtype))
        return out
    torch = _torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, unsupported globals
        raise ShaecError(f"not a PyTorch file that loads safely ({type(exc).__name__}: {str(exc)[:80]})") from None
    tensors = {}
    for name, value in _state_dict_of(obj).items():
        if value.dtype == torch.bfloat16:
            tensors[name] = (value.float().numpy(), "bfloat16")
        else:
            array = value.detach().cpu().numpy()
            tensors[name] = (array, dtype_name(array.dtype))
    return tensors


def dtype_name(dtype: np.dtype) -> str:
    """The .shaw dtype name of a numpy dtype (little-endian), or ShaecError where it has none."""
    name = np.dtype(dtype).newbyteorder("<").str if np.dtype(dtype).itemsize > 1 else np.dtype(dtype).str
    if name not in DTYPE_CODES:
        raise ShaecError(f"tensors of dtype {dtype} are not supported")
    return name


def write_state_dict(arrays: dict[str, tuple[np.ndarray, str]]) -> bytes:
    """The decoded tensors as the bytes of a torch.save'd state_dict (loadable with load_state_dict)."""
    import io

    torch = _torch()
    state = {}
    for name, (array, dtype) in arrays.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        state[name] = tensor.to(torch.bfloat16) if dtype == "bfloat16" else tensor
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()
