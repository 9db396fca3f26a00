"""Store installed models' entropy models again in the current, smaller layout.

    python scripts/repack_tables.py shae-v9 shae-v9-ssim shae-v9-ssim2 shae-v10 shae-v11 shae-v11-ssim
    python scripts/repack_tables.py shae-v7 shae-v8 shae-v8-ssim

A shae-v9-layout model's hyperprior.npz is saved again by HyperpriorTables.save, y's tables as
what rebuilds them (their Gaussians' grid, from the model's config as the export made it, and the
counts where the rebuild differs; imgcodec.gaussian_tables); a shae-v8-layout model's prior.npz
gets its counts as differences along the level axis (imgcodec.zoo.compact_prior_counts).
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

from imgcodec.gaussian_tables import YTables
from imgcodec.hyperprior import HyperpriorTables
from imgcodec.int_arrays import stored_names
from imgcodec.train.export import file_sha256
from imgcodec.train.shae_v9 import y_table_grid
from imgcodec.zoo import PRIOR_FILE, compact_prior_counts, find_model, models_dir, prior_counts

TABLES = "hyperprior.npz"


def same(a: Any, b: Any) -> bool:
    """Exact equality of two HyperpriorTables, field by field (arrays: values and dtypes; y's
    tables: every count)."""
    if isinstance(a, YTables):
        return isinstance(b, YTables) and same(a.full(), b.full())
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return bool(a == b)


def repack(folder: Path, name: str, config: dict[str, Any]) -> tuple[int, int]:
    """Rewrite folder/name (TABLES or PRIOR_FILE) of a model with this config (model.json's);
    returns its size before and after."""
    path = folder / name
    fresh = folder / f"{Path(name).stem}.repack.npz"
    if name == TABLES:
        old = HyperpriorTables.load(path)
        if old.y_tables.grid is None:
            counts = old.y_counts
            old = dataclasses.replace(old, y_tables=YTables.whole(
                counts, y_table_grid(old.y_centers, counts.shape[0], config["scale_min"])))
        old.save(fresh)
        again = HyperpriorTables.load(fresh)
        again.y_tables.check()
        equal = same(old, again)
    else:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        counts = prior_counts(arrays)
        kept = {k: v for k, v in arrays.items() if k not in ("counts", *stored_names(arrays, "count_steps"))}
        np.savez_compressed(fresh, **kept, **compact_prior_counts(counts))
        with np.load(fresh) as data:
            again = {k: data[k] for k in data.files}
        equal = same(counts, prior_counts(again)) and all(same(v, again[k]) for k, v in kept.items())
    if not equal:
        fresh.unlink()
        raise SystemExit(f"{folder.name}: the repacked {name} differs; nothing changed")
    before = path.stat().st_size
    os.replace(fresh, path)
    return before, path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="installed models")
    args = parser.parse_args(argv)
    manifest_path = models_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in args.names:
        info = find_model(name)
        tables = next((n for n in (TABLES, PRIOR_FILE) if n in info.meta["files"]), None)
        if tables is None:
            raise SystemExit(f"{name} has neither {TABLES} nor {PRIOR_FILE}")
        before, after = repack(info.folder, tables, info.meta["config"])
        meta_path = info.folder / "model.json"
        meta = json.loads(meta_path.read_text())
        meta["files"][tables] = file_sha256(info.folder / tables)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        if "files" in manifest["models"][name]:
            manifest["models"][name]["files"] = meta["files"]
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"{name}: {tables} {before} -> {after} bytes ({100 * (after / before - 1):+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
