"""The runtime install carries no torch, and a wheel carries the models."""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "coffee.png"


def test_encode_and_decode_import_no_torch(tmp_path: Path) -> None:
    """The whole runtime path (library and CLI) runs without importing torch."""
    code = f"""
import sys
from click.testing import CliRunner
from imgcodec.cli import main
runner = CliRunner()
for args in (["encode", {str(SAMPLE)!r}, "-q", "1", "-o", {str(tmp_path / "a.shae")!r}],
             ["decode", {str(tmp_path / "a.shae")!r}, "-o", {str(tmp_path / "a.png")!r}],
             ["info", {str(tmp_path / "a.shae")!r}]):
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
sys.exit("torch" in sys.modules)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_runtime_requirements_leave_torch_to_the_extras() -> None:
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    runtime = cfg["options"]["install_requires"]
    assert "torch" not in runtime and "msssim" not in runtime
    extras = cfg["options.extras_require"]
    assert all("torch" in extras[name] for name in ("bench", "train", "test"))


@pytest.mark.slow
def test_fresh_venv_install_without_torch_encodes_and_decodes(tmp_path: Path) -> None:
    """`pip install .` (not editable) into a new venv: no torch, the models come along."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, shaec = env_dir / "bin" / "python", env_dir / "bin" / "shaec"
    subprocess.run([python, "-m", "pip", "install", "-q", str(REPO)], check=True, timeout=900)
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    subprocess.run([shaec, "encode", SAMPLE, "-o", tmp_path / "a.shae"], check=True, timeout=120, cwd=tmp_path)
    subprocess.run([shaec, "decode", tmp_path / "a.shae", "-o", tmp_path / "a.png"], check=True, timeout=120,
                   cwd=tmp_path)
    subprocess.run([shaec, "decode", REPO / "samples" / "shae-v7-q3.shae", "-o", tmp_path / "v7.png"],
                   check=True, timeout=120, cwd=tmp_path)
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "v7.png").stat().st_size > 0
    wheel_dir = tmp_path / "wheel"
    subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", wheel_dir], check=True,
                   timeout=900)
    import zipfile

    names = set(zipfile.ZipFile(next(wheel_dir.glob("*.whl"))).namelist())
    assert "imgcodec/models/manifest.json" in names
    from imgcodec.zoo import list_models

    for info in list_models():  # every file a model ships (.onnx, .shaw, .npz) is in the wheel
        shipped = [name for name in info.meta["files"] if (info.folder / name).exists()]
        assert shipped and {f"imgcodec/models/{info.folder.name}/{name}" for name in shipped} <= names, info.name
