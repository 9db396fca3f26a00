"""Store installed models' entropy models (hyperprior.npz) again in the current, smaller layout.

    python scripts/repack_tables.py shae-v9 shae-v9-ssim shae-v9-ssim2 shae-v10 shae-v11 shae-v11-ssim

Every array is read back from the new file and must equal the old one's exactly (the same
integer networks and tables, so every file decodes to the same symbols); only then does the new
file replace the old, and model.json and the manifest get its sha256. The model id stays: the
weights it names do not change.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from imgcodec.hyperprior import HyperpriorTables
from imgcodec.train.export import file_sha256
from imgcodec.zoo import find_model, models_dir

TABLES = "hyperprior.npz"


def same(a: Any, b: Any) -> bool:
    """Exact equality of two HyperpriorTables, field by field (arrays: values and dtypes)."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return bool(a == b)


def repack(folder: Path) -> tuple[int, int]:
    """Rewrite folder/hyperprior.npz; returns its size before and after."""
    path = folder / TABLES
    old = HyperpriorTables.load(path)
    fresh = folder / "hyperprior.repack.npz"
    old.save(fresh)
    if not same(old, HyperpriorTables.load(fresh)):
        fresh.unlink()
        raise SystemExit(f"{folder.name}: the repacked tables differ; nothing changed")
    before = path.stat().st_size
    os.replace(fresh, path)
    return before, path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="installed models with a hyperprior.npz")
    args = parser.parse_args(argv)
    manifest_path = models_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in args.names:
        info = find_model(name)
        if TABLES not in info.meta["files"]:
            raise SystemExit(f"{name} has no {TABLES}")
        before, after = repack(info.folder)
        meta_path = info.folder / "model.json"
        meta = json.loads(meta_path.read_text())
        meta["files"][TABLES] = file_sha256(info.folder / TABLES)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        if "files" in manifest["models"][name]:
            manifest["models"][name]["files"] = meta["files"]
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"{name}: {TABLES} {before} -> {after} bytes ({100 * (after / before - 1):+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
