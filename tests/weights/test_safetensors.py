"""safetensors files (imgcodec.weights.safetensors_files): both ways against the reference
implementation, bfloat16 rounding as PyTorch does it, damaged files, and `shaec weights` on
them without PyTorch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from imgcodec.cli import main
from imgcodec.errors import ShaecError
from imgcodec.weights.safetensors_files import read_safetensors, to_bfloat16_bits, write_safetensors

safetensors_torch = pytest.importorskip("safetensors.torch")


def sample_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(32, 16, 3, 3, generator=generator),
            "fc.weight": torch.randn(40, 64, generator=generator).to(torch.bfloat16),
            "fc.bias": torch.randn(40, generator=generator).half(),
            "norm.running_var": torch.rand(16, generator=generator, dtype=torch.float64),
            "steps": torch.tensor(7, dtype=torch.int64), "mask": torch.tensor([True, False, True]),
            "ids": torch.arange(-3, 3, dtype=torch.int8), "bytes": torch.tensor([0, 255], dtype=torch.uint8),
            "i16": torch.tensor([-2, 9], dtype=torch.int16), "i32": torch.tensor([1 << 20], dtype=torch.int32),
            "empty": torch.zeros(0, 5)}


def test_files_of_the_reference_writer_read_exactly_and_ours_load_there(tmp_path: Path) -> None:
    tensors = sample_tensors()
    safetensors_torch.save_file(tensors, str(tmp_path / "ref.safetensors"), metadata={"format": "pt"})
    ours = read_safetensors(tmp_path / "ref.safetensors")
    assert set(ours) == set(tensors)
    for name, tensor in tensors.items():
        values, dtype = ours[name]
        expected = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        assert values.shape == tuple(tensor.shape) and values.dtype == expected.dtype
        np.testing.assert_array_equal(values, expected)
        assert (dtype == "bfloat16") == (tensor.dtype == torch.bfloat16)
    (tmp_path / "ours.safetensors").write_bytes(write_safetensors(ours))
    back = safetensors_torch.load_file(str(tmp_path / "ours.safetensors"))
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name
    header_length = int.from_bytes((tmp_path / "ours.safetensors").read_bytes()[:8], "little")
    assert (8 + header_length) % 8 == 0  # the buffer starts aligned


def test_bfloat16_rounding_is_pytorchs() -> None:
    generator = torch.Generator().manual_seed(1)
    values = torch.cat([torch.randn(10_000, generator=generator) * 10.0 ** torch.randint(-30, 30, (10_000,), generator=generator),
                        torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8,
                                      3.3895314e38, 1e-40])])  # ties either way, the largest float, a subnormal
    expected = values.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(to_bfloat16_bits(values.numpy()), expected)
    assert np.isnan(np.array(to_bfloat16_bits(np.array([np.nan], np.float32)).astype(np.uint32) << 16, np.uint32)
                    .view(np.float32)).all()


def header_file(path: Path, header: object, buffer: bytes = b"", length: int | None = None) -> Path:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes((len(text) if length is None else length).to_bytes(8, "little") + text + buffer)
    return path


@pytest.mark.parametrize("header, buffer, length, message", [
    (b"", b"", 10**12, "header of"),
    (b"{not json", b"", None, "not JSON"),
    ([1, 2], b"", None, "not a JSON object"),
    ({"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, None, "exactly dtype, shape and data_offsets"),
    ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, None, "bad shape"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 80]}}, b"\0" * 8, None, "outside the file"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None, "8 bytes for shape"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None, "gap"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None, "overlaps"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, None, "after the last tensor"),
    ({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}}, b"\0" * 8, None, "does not support"),
    ({"__metadata__": {"a": 1}}, b"", None, "map names to strings"),
])
def test_damaged_or_unsupported_files_are_one_clear_error(tmp_path: Path, header: object, buffer: bytes,
                                                         length: int | None, message: str) -> None:
    path = header_file(tmp_path / "bad.safetensors", header, buffer, length)
    with pytest.raises(ShaecError, match=message):
        read_safetensors(path)


def test_a_file_shorter_than_its_length_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "short.safetensors").write_bytes(b"\x05\0")
    with pytest.raises(ShaecError, match="shorter than"):
        read_safetensors(tmp_path / "short.safetensors")
    result = CliRunner().invoke(main, ["weights", "compress", str(tmp_path / "short.safetensors")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Traceback" not in result.output


def test_shaec_weights_compresses_and_writes_safetensors(tmp_path: Path) -> None:
    tensors = sample_tensors()
    safetensors_torch.save_file(tensors, str(tmp_path / "model.safetensors"))
    runner = CliRunner()
    done = runner.invoke(main, ["weights", "compress", str(tmp_path / "model.safetensors"), "--lossless"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(main, ["weights", "decompress", str(tmp_path / "model.shaw"), "-o",
                                str(tmp_path / "back.safetensors")])
    assert done.exit_code == 0, done.output
    back = safetensors_torch.load_file(str(tmp_path / "back.safetensors"))
    for name, tensor in tensors.items():  # lossless: every value and dtype
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name
    done = runner.invoke(main, ["weights", "compress", str(tmp_path / "model.safetensors"), "-o",
                                str(tmp_path / "small.shaw"), "--bits-per-weight", "4"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "small.shaw").stat().st_size < (tmp_path / "model.safetensors").stat().st_size / 3
    runner.invoke(main, ["weights", "decompress", str(tmp_path / "small.shaw"), "-o", str(tmp_path / "small.safetensors")])
    small = safetensors_torch.load_file(str(tmp_path / "small.safetensors"))
    weight, decoded = tensors["conv.weight"], small["conv.weight"]
    assert decoded.dtype == weight.dtype and decoded.shape == weight.shape
    assert float((decoded - weight).pow(2).mean() / weight.pow(2).mean()) < 0.02  # 4 bits: close, not equal
    assert torch.equal(small["steps"], tensors["steps"]) and torch.equal(small["mask"], tensors["mask"])


def test_safetensors_need_no_torch(tmp_path: Path) -> None:
    """A fresh process compresses and decompresses a safetensors file without importing torch."""
    safetensors_torch.save_file(sample_tensors(), str(tmp_path / "model.safetensors"))
    code = f"""
import sys
from click.testing import CliRunner
from imgcodec.cli import main
folder = {str(tmp_path)!r}
for args in (["weights", "compress", folder + "/model.safetensors"],
             ["weights", "decompress", folder + "/model.shaw", "-o", folder + "/back.safetensors"],
             ["weights", "info", folder + "/model.shaw"]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
assert "torch" not in sys.modules and "onnx" not in sys.modules, "imported"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "back.safetensors").stat().st_size > 0


def sharded(folder: Path, tensors: dict[str, torch.Tensor], index: dict | None = None) -> Path:
    """tensors in two shards (the first half, the rest) with the index that names them."""
    names = list(tensors)
    shards = {"model-00001-of-00002.safetensors": names[:len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, held in shards.items():
        safetensors_torch.save_file({n: tensors[n] for n in held}, str(folder / shard))
    weight_map = {n: shard for shard, held in shards.items() for n in held}
    path = folder / "model.safetensors.index.json"
    path.write_text(json.dumps(index if index is not None else {"metadata": {"total_size": 1}, "weight_map": weight_map}))
    return path


def test_a_sharded_model_compresses_as_one_file(tmp_path: Path) -> None:
    tensors = sample_tensors()
    index = sharded(tmp_path, tensors)
    runner = CliRunner()
    done = runner.invoke(main, ["weights", "compress", str(index), "--lossless"])
    assert done.exit_code == 0, done.output
    shards = sum(p.stat().st_size for p in tmp_path.glob("model-*.safetensors")) + index.stat().st_size
    assert (tmp_path / "model.shaw").exists() and f"{shards / 1e3:.1f} KB" in done.output  # the model's whole size
    done = runner.invoke(main, ["weights", "decompress", str(tmp_path / "model.shaw"), "-o",
                                str(tmp_path / "whole.safetensors")])
    assert done.exit_code == 0, done.output
    back = safetensors_torch.load_file(str(tmp_path / "whole.safetensors"))
    assert set(back) == set(tensors)
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name


@pytest.mark.parametrize("damage, message", [
    (lambda m: {"weight_map": {**m, "conv.weight": "../elsewhere.safetensors"}}, "not a .safetensors file beside"),
    (lambda m: {"weight_map": {**m, "conv.weight": "model-00003-of-00002.safetensors"}}, "is missing"),
    (lambda m: {"weight_map": {**m, "ghost": "model-00001-of-00002.safetensors"}}, "lacks 'ghost'"),
    (lambda m: {"weight_map": {n: s for n, s in m.items() if n != "conv.weight"}}, "holds 'conv.weight'"),
    (lambda m: {"weights": m}, "no weight_map"),
    (lambda m: [m], "no weight_map"),
])
def test_damaged_indexes_are_one_clear_error(tmp_path: Path, damage, message: str) -> None:
    tensors = sample_tensors()
    index = sharded(tmp_path, tensors)
    weight_map = json.loads(index.read_text())["weight_map"]
    index.write_text(json.dumps(damage(weight_map)))
    result = CliRunner().invoke(main, ["weights", "compress", str(index)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "model.shaw").exists()
