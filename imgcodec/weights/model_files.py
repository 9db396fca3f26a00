"""Whole model files to .shaw bytes and back: what `shaec weights compress` and `decompress` do.

A PyTorch or safetensors file gives its tensors; an ONNX model gives its initializers and its
graph, which travels in the .shaw file (codec 4) so that decompressing gives back a runnable
.onnx. With sample inputs an ONNX model's bits follow its measured sensitivities
(onnx_weights.calibrate). Decompressed tensors are written as ONNX, a PyTorch state_dict or a
safetensors file, chosen by the output's extension (output_form).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ShaecError
from .codec import WeightCodecConfig, compress_tensors, decompress_record, quantizable
from .container import Record, graph_record, pack, split_graph, unpack


def is_onnx(path: Path) -> bool:
    return path.suffix.lower() == ".onnx"


def default_shaw_path(path: Path) -> Path:
    """Where `compress` writes by default: NAME.shaw beside the model (NAME of a sharded
    model's NAME.safetensors.index.json)."""
    from .safetensors_files import model_stem

    return path.parent / f"{model_stem(path)}.shaw"


def model_bytes(path: Path) -> int:
    """The model's size on disk: the file's, or a sharded model's index and shards together."""
    from .safetensors_files import is_index, shard_paths

    if is_index(path):
        return path.stat().st_size + sum(p.stat().st_size for p in set(shard_paths(path).values()) if p.is_file())
    return path.stat().st_size


def compress_model(path: Path, config: WeightCodecConfig, calibration: dict[str, np.ndarray] | None = None) -> bytes:
    """The .shaw bytes of a model file; `calibration` (ONNX only): graph input name -> batch."""
    from .tensors import read_tensors

    if calibration is not None and not is_onnx(path):
        raise ShaecError("calibration needs an .onnx model: a state_dict cannot run without its code")
    tensors = read_tensors(path)
    if not tensors:
        raise ShaecError(f"{path}: no tensors found")
    measured = None
    if calibration is not None:
        from .onnx_weights import calibrate

        measured = calibrate(path, calibration, [n for n, (a, d) in tensors.items() if quantizable(a, d, config)])
    try:
        records = compress_tensors(tensors, config, measured)
    except ValueError as exc:
        raise ShaecError(str(exc)) from None
    if is_onnx(path):
        from .onnx_weights import split

        records.append(graph_record(split(path)[0]))
    return pack(records)


def read_model(shaw: bytes) -> tuple[bytes | None, list[Record]]:
    """(the ONNX graph the file carries, or None; its tensor records)."""
    return split_graph(unpack(shaw))


def decode_tensors(tensors: list[Record]) -> dict[str, np.ndarray]:
    """name -> decoded array of each tensor record."""
    return {r.name: decompress_record(r) for r in tensors}


#: What decompress_model writes: an ONNX model, a torch.save'd state_dict, a safetensors file.
OUTPUT_FORMS = ("onnx", "pt", "safetensors")


def output_form(path: Path) -> str:
    """The form a decompressed model takes at this path: by its extension, a state_dict otherwise."""
    suffix = path.suffix.lower()
    return "onnx" if suffix == ".onnx" else "safetensors" if suffix == ".safetensors" else "pt"


def decompress_model(graph: bytes | None, tensors: list[Record], form: str) -> bytes:
    """The tensors of read_model as an ONNX model (with its graph), a torch.save'd state_dict or
    a safetensors file (form: OUTPUT_FORMS)."""
    if form not in OUTPUT_FORMS:
        raise ValueError(f"form must be one of {OUTPUT_FORMS}, not {form!r}")
    if form == "safetensors":
        from .safetensors_files import write_safetensors

        return write_safetensors({r.name: (decompress_record(r), r.dtype) for r in tensors})
    if form == "onnx":
        if graph is None:
            raise ShaecError("the file carries no ONNX graph (it was compressed from a PyTorch file); "
                             "write a .pt state_dict instead")
        from .onnx_weights import join

        return join(graph, decode_tensors(tensors))
    from .tensors import write_state_dict

    return write_state_dict({r.name: (decompress_record(r), r.dtype) for r in tensors})


def read_calibration(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a calibration .npz (no pickled objects)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        raise ShaecError(f"{path}: not a readable .npz of arrays ({str(exc)[:80]})") from None
