"""``shaec bench DIR``: every image x every codec x every quality, with metrics, tables and plots.

One task is one image with one codec at all its qualities; tasks run in this process
(``jobs=1``) or in a pool of spawned worker processes. Results are per-image records, mean
RD curves per codec (means over images of bpp, PSNR, MS-SSIM and times, as CompressAI's
``eval_model`` reports them) and BD-rates against JPEG and against BPG.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from imgcodec.bench.bdrate import BDRate, bd_rate_detailed
from imgcodec.bench.codecs import BenchCodec, Quality, get_codecs
from imgcodec.errors import ImageInputError
from imgcodec.metrics import bits_per_pixel, ms_ssim_db, ms_ssim_rgb, psnr_rgb
from imgcodec.workers import threads_per_worker, worker_pool

#: File name extensions (lower case) of the images a benchmark directory may hold.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp",
                              ".tif", ".tiff", ".webp"})

#: BD-rate anchors, in order: JPEG, then whichever BPG ran (real bpgenc preferred).
JPEG_ANCHOR = "jpeg"
BPG_ANCHORS = ("bpg", "bpg-x265")

#: Quality metrics BD-rates are computed for: key in the JSON, label in tables.
BD_METRICS = {"psnr-rgb": "PSNR", "ms-ssim-rgb-db": "MS-SSIM dB"}


@dataclass(frozen=True)
class Record:
    """One image coded by one codec at one quality."""

    codec: str
    quality: Quality
    image: str
    width: int
    height: int
    n_bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    encode_s: float
    decode_s: float


@dataclass(frozen=True)
class CodecCurve:
    """Mean RD curve of one codec: one entry per quality, means over the images coded."""

    codec: str
    description: str
    quality: list[Quality]
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float]
    encode_s: list[float]
    decode_s: list[float]
    num_images: list[int]

    @property
    def ms_ssim_db(self) -> list[float]:
        """MS-SSIM of the mean, in dB (CompressAI's plots convert the mean the same way)."""
        return [ms_ssim_db(v) for v in self.ms_ssim]

    def metric(self, key: str) -> list[float]:
        """Quality values by BD_METRICS key."""
        return {"psnr-rgb": self.psnr, "ms-ssim-rgb-db": self.ms_ssim_db}[key]


@dataclass(frozen=True)
class BDEntry:
    """BD-rate of one codec against one anchor for one quality metric."""

    codec: str
    anchor: str
    metric: str  # a BD_METRICS key
    result: BDRate


@dataclass
class BenchResult:
    """Everything one benchmark run produced (also written to ``files``)."""

    dataset: str
    directory: Path
    images: list[str]
    codecs: list[str]
    records: list[Record]
    curves: dict[str, CodecCurve]
    bd_rates: list[BDEntry]
    skipped: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------- images


def find_images(directory: Path) -> list[Path]:
    """Image files directly in ``directory`` (not recursive), sorted by name."""
    if not directory.is_dir():
        raise ImageInputError(f"{directory}: not a directory")
    images = sorted(p for p in directory.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise ImageInputError(f"{directory}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return images


def load_rgb(path: Path) -> np.ndarray:
    """Load an image as (H, W, 3) uint8 RGB; alpha is dropped, grey and palettes expanded."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class _Task:
    image_path: Path
    codec: BenchCodec
    qualities: tuple[Quality, ...]


@dataclass(frozen=True)
class _TaskOutcome:
    records: list[Record]
    error: str | None = None


def _code_image(rgb: np.ndarray, image_name: str, codec: BenchCodec, quality: Quality) -> Record:
    """Encode and decode one image at one quality, timing each step, and measure it."""
    height, width = rgb.shape[:2]
    start = time.perf_counter()
    data = codec.encode(rgb, quality)
    encoded = time.perf_counter()
    reconstruction = codec.decode(data, width, height)
    decoded = time.perf_counter()
    if reconstruction.shape != rgb.shape or reconstruction.dtype != np.uint8:
        raise RuntimeError(f"decoded {reconstruction.shape} {reconstruction.dtype}, "
                           f"expected {rgb.shape} uint8")
    return Record(codec=codec.name, quality=quality, image=image_name, width=width,
                  height=height, n_bytes=len(data), bpp=bits_per_pixel(len(data), width, height),
                  psnr=psnr_rgb(rgb, reconstruction), ms_ssim=ms_ssim_rgb(rgb, reconstruction),
                  encode_s=encoded - start, decode_s=decoded - encoded)


def _run_task(task: _Task) -> _TaskOutcome:
    """Worker entry point: one image with one codec at all its qualities; errors are returned."""
    records: list[Record] = []
    quality: Quality | None = None
    try:
        rgb = load_rgb(task.image_path)  # (H, W, 3)
        for quality in task.qualities:
            records.append(_code_image(rgb, task.image_path.name, task.codec, quality))
    except Exception as error:  # report and go on with the other tasks
        where = "" if quality is None else f" at quality {quality}"
        return _TaskOutcome(records, f"{task.codec.name} on {task.image_path.name}{where}: "
                                     f"{type(error).__name__}: {error}")
    return _TaskOutcome(records)


def _init_worker(threads: int) -> None:
    """Keep each worker's torch (MS-SSIM, shaec) to its share of the CPU cores."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def _execute(tasks: Sequence[_Task], jobs: int, on_done: Callable[[_TaskOutcome], None]) -> None:
    """Run tasks in this process (jobs == 1) or in ``jobs`` worker processes sharing the cores
    (imgcodec.workers)."""
    if jobs <= 1:
        for task in tasks:
            on_done(_run_task(task))
        return
    with worker_pool(jobs, _init_worker, (threads_per_worker(jobs),)) as pool:
        futures: list[Future[_TaskOutcome]] = [pool.submit(_run_task, t) for t in tasks]
        for future in as_completed(futures):
            on_done(future.result())


# --------------------------------------------------------------------------- summaries


def _mean(values: Iterable[float]) -> float:
    return float(np.mean(list(values)))


def _curve(name: str, description: str, qualities: Sequence[Quality],
           records: Sequence[Record]) -> CodecCurve | None:
    """Mean curve of one codec's records, qualities in the given order (None: no records)."""
    rows: dict[str, list] = {k: [] for k in ("quality", "bpp", "psnr", "ms_ssim", "encode_s",
                                              "decode_s", "num_images")}
    for quality in qualities:
        group = [r for r in records if r.codec == name and r.quality == quality]
        if not group:
            continue
        rows["quality"].append(quality)
        for key in ("bpp", "psnr", "ms_ssim", "encode_s", "decode_s"):
            rows[key].append(_mean(getattr(r, key) for r in group))
        rows["num_images"].append(len(group))
    return CodecCurve(codec=name, description=description, **rows) if rows["quality"] else None


def summarize(records: Sequence[Record], codecs: Sequence[BenchCodec],
              qualities: Mapping[str, Sequence[Quality]]) -> dict[str, CodecCurve]:
    """Mean curve per codec, qualities in the codec's order; qualities without records are left out."""
    curves = {codec.name: _curve(codec.name, codec.description, qualities[codec.name], records)
              for codec in codecs}
    return {name: curve for name, curve in curves.items() if curve is not None}


def summarize_records(records: Sequence[Record]) -> dict[str, CodecCurve]:
    """Mean curve per codec of records alone (e.g. read back from a results.csv): codecs and
    qualities in the order they first appear, which is the order a bench run writes them."""
    qualities: dict[str, list[Quality]] = {}
    for r in records:
        seen = qualities.setdefault(r.codec, [])
        if r.quality not in seen:
            seen.append(r.quality)
    curves = {name: _curve(name, "", q, records) for name, q in qualities.items()}
    return {name: curve for name, curve in curves.items() if curve is not None}


def bd_anchors(curves: Mapping[str, CodecCurve]) -> list[str]:
    """The anchors present: ``jpeg`` and the first of ``bpg``, ``bpg-x265`` that ran."""
    anchors = [JPEG_ANCHOR] if JPEG_ANCHOR in curves else []
    anchors += [name for name in BPG_ANCHORS if name in curves][:1]
    return anchors


def compute_bd_rates(curves: Mapping[str, CodecCurve]) -> list[BDEntry]:
    """BD-rate (on mean bpp) of every codec against every anchor, for PSNR and MS-SSIM dB."""
    entries = []
    for anchor in bd_anchors(curves):
        reference = curves[anchor]
        for name, curve in curves.items():
            if name == anchor:
                continue
            for metric in BD_METRICS:
                result = bd_rate_detailed(reference.bpp, reference.metric(metric),
                                          curve.bpp, curve.metric(metric))
                entries.append(BDEntry(codec=name, anchor=anchor, metric=metric, result=result))
    return entries


# --------------------------------------------------------------------------- output files


def _count(n: int, noun: str) -> str:
    """'1 image', '2 images'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _finite_or_none(value: float) -> float | None:
    """JSON has no inf/NaN: lossless points (PSNR inf) become null."""
    return value if math.isfinite(value) else None


def _results_json(result: BenchResult) -> dict[str, Any]:
    codecs_json = {}
    for name, curve in result.curves.items():
        codecs_json[name] = {
            "name": name,
            "description": curve.description,
            "results": {
                "quality": list(curve.quality),
                "bpp": curve.bpp,
                "psnr-rgb": [_finite_or_none(v) for v in curve.psnr],
                "ms-ssim-rgb": curve.ms_ssim,
                "ms-ssim-rgb-db": [_finite_or_none(v) for v in curve.ms_ssim_db],
                "encoding_time": curve.encode_s,
                "decoding_time": curve.decode_s,
                "num_images": curve.num_images,
            },
        }
    return {
        "dataset": result.dataset,
        "directory": str(result.directory),
        "num_images": len(result.images),
        "images": result.images,
        "codecs": codecs_json,
        "bd_rate": [{"codec": e.codec, "anchor": e.anchor, "metric": e.metric,
                     "bd_rate_percent": e.result.percent, "reason": e.result.reason,
                     "quality_range": e.result.quality_range} for e in result.bd_rates],
        "skipped": result.skipped,
        "errors": result.errors,
    }


def _write_records_csv(records: Sequence[Record], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["codec", "quality", "image", "width", "height", "bytes", "bpp",
                         "psnr_rgb", "ms_ssim_rgb", "ms_ssim_rgb_db", "encode_s", "decode_s"])
        for r in records:
            writer.writerow([r.codec, r.quality, r.image, r.width, r.height, r.n_bytes,
                             f"{r.bpp:.6f}", f"{r.psnr:.4f}", f"{r.ms_ssim:.6f}",
                             f"{ms_ssim_db(r.ms_ssim):.4f}", f"{r.encode_s:.6f}",
                             f"{r.decode_s:.6f}"])


def _parse_quality(text: str) -> Quality:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def read_records_csv(path: Path) -> list[Record]:
    """The per-image records of a results.csv that a bench run wrote (_write_records_csv)."""
    with Path(path).open(newline="") as handle:
        return [Record(codec=row["codec"], quality=_parse_quality(row["quality"]), image=row["image"],
                       width=int(row["width"]), height=int(row["height"]), n_bytes=int(row["bytes"]),
                       bpp=float(row["bpp"]), psnr=float(row["psnr_rgb"]),
                       ms_ssim=float(row["ms_ssim_rgb"]), encode_s=float(row["encode_s"]),
                       decode_s=float(row["decode_s"]))
                for row in csv.DictReader(handle)]


def _write_bdrate_csv(entries: Sequence[BDEntry], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["codec", "anchor", "metric", "bd_rate_percent", "note"])
        for e in entries:
            percent = "" if e.result.percent is None else f"{e.result.percent:.4f}"
            writer.writerow([e.codec, e.anchor, e.metric, percent, e.result.reason or ""])


def _write_plot(result: BenchResult, metric: str, path: Path) -> None:
    """One RD plot (bpp on x) with every codec; uses the Agg canvas directly, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 6), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for name, curve in result.curves.items():
        points = [(b, q) for b, q in zip(curve.bpp, curve.metric(metric)) if math.isfinite(q)]
        if not points:
            continue
        xs, ys = zip(*points)
        style = "--" if name.startswith("bpg-x265") else "-"
        axes.plot(xs, ys, style, marker="o", markersize=3, label=name)
    label = BD_METRICS[metric]
    # The x axis covers shaec's range (to 2 bpp, or a little past its top level), not the
    # highest-quality points of the classical codecs, which would squeeze every curve left.
    shaec = result.curves.get("shaec")
    right = max(2.0, 1.15 * max(shaec.bpp)) if shaec is not None and shaec.bpp else None
    if right is not None:
        axes.set_xlim(0, right)
    axes.set_xlabel("bits per pixel")
    axes.set_ylabel("PSNR RGB (dB)" if metric == "psnr-rgb" else "MS-SSIM RGB (dB), -10 log10(1 - v)")
    axes.set_title(f"{result.dataset} ({_count(len(result.images), 'image')}): {label}")
    axes.grid(True, alpha=0.3)
    if result.curves:
        axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


def write_outputs(result: BenchResult, out_dir: Path) -> dict[str, Path]:
    """Write results.json, results.csv, bdrate.csv, table.txt, rd-psnr.png and rd-msssim.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "table": out_dir / "table.txt",
        "json": out_dir / "results.json",
        "csv": out_dir / "results.csv",
        "bdrate": out_dir / "bdrate.csv",
        "plot_psnr": out_dir / "rd-psnr.png",
        "plot_msssim": out_dir / "rd-msssim.png",
    }
    files["json"].write_text(json.dumps(_results_json(result), indent=2) + "\n")
    files["table"].write_text(format_table(result) + "\n")
    _write_records_csv(result.records, files["csv"])
    _write_bdrate_csv(result.bd_rates, files["bdrate"])
    _write_plot(result, "psnr-rgb", files["plot_psnr"])
    _write_plot(result, "ms-ssim-rgb-db", files["plot_msssim"])
    return files


# --------------------------------------------------------------------------- entry point


def _warn(line: str) -> None:
    """One line on stderr."""
    print(line, file=sys.stderr)


def _select_codecs(codec_names: Sequence[str] | None, extra_codecs: Sequence[BenchCodec],
                   qualities: Mapping[str, Sequence[Quality]] | None,
                   warn: Callable[[str], None]) -> tuple[list[BenchCodec], dict[str, tuple[Quality, ...]],
                                                         dict[str, str]]:
    """Resolve names, drop unavailable codecs (one warning line each), fix quality lists."""
    requested = get_codecs(codec_names) + list(extra_codecs)
    names = [c.name for c in requested]
    if len(set(names)) != len(names):
        raise ValueError(f"codec names must be unique, got {names}")
    unknown = set(qualities or {}) - set(names)
    if unknown:
        raise ValueError(f"quality overrides for codecs not selected: {', '.join(sorted(unknown))}")
    selected: list[BenchCodec] = []
    chosen_qualities: dict[str, tuple[Quality, ...]] = {}
    skipped: dict[str, str] = {}
    for codec in requested:
        reason = codec.unavailable_reason()
        if reason is not None:
            skipped[codec.name] = reason
            warn(f"skipping {codec.name}: {reason}")
            continue
        selected.append(codec)
        override = (qualities or {}).get(codec.name)
        chosen_qualities[codec.name] = tuple(override if override is not None
                                             else codec.qualities())
    return selected, chosen_qualities, skipped


def _kept_records(out_dir: Path, rerun: Sequence[str], images: Sequence[str]) -> list[Record]:
    """The rows of an earlier run in out_dir/results.csv for the codecs not run again, for
    ``update``; ValueError when there is no such run or it coded other images."""
    path = out_dir / "results.csv"
    if not path.exists():
        raise ValueError(f"--update: '{out_dir}' holds no earlier run (no results.csv)")
    kept = [r for r in read_records_csv(path) if r.codec not in rerun]
    coded = {r.image for r in kept}
    if kept and coded != set(images):
        raise ValueError(f"--update: the earlier run in '{out_dir}' coded {len(coded)} other images; run every codec again")
    return kept


def run_bench(directory: Path, codec_names: list[str] | None, out_dir: Path, jobs: int = 1,
              progress: bool = True, *, qualities: Mapping[str, Sequence[Quality]] | None = None,
              extra_codecs: Sequence[BenchCodec] = (), update: bool = False) -> BenchResult:
    """Benchmark every image in ``directory`` with every codec and quality; write ``out_dir``.

    ``codec_names`` None selects the default set (see :func:`get_codecs`); unavailable codecs
    are skipped with one line on stderr. ``qualities`` overrides a codec's quality list by
    name (e.g. to keep tests fast); ``extra_codecs`` adds codecs that are not registered (must
    be picklable when ``jobs > 1``). ``jobs > 1`` uses spawned worker processes, so as
    with any spawn-based multiprocessing the calling program must be an importable file whose
    entry point is guarded by ``if __name__ == "__main__"`` (true for the ``shaec`` console
    script; not for code piped into ``python -``). A failing image/codec pair is reported on stderr and in
    ``errors``; its codec's means then cover fewer images (see ``num_images``). ``update`` keeps
    the other codecs' rows of the earlier run in ``out_dir`` (the same images), so that one
    codec can be run again, e.g. after a new model, without the slow ones.
    """
    from tqdm import tqdm

    directory = Path(directory)
    out_dir = Path(out_dir)
    image_paths = find_images(directory)
    codecs, chosen_qualities, skipped = _select_codecs(codec_names, extra_codecs, qualities,
                                                       _warn)
    if not codecs:
        raise ValueError("none of the requested codecs can run here: "
                         + "; ".join(f"{name}: {reason}" for name, reason in skipped.items()))
    kept = _kept_records(out_dir, [c.name for c in codecs], [p.name for p in image_paths]) if update else []

    # One task per image, codec and level, so that the bar moves with every level coded.
    tasks = [_Task(path, codec, (quality,))
             for path in image_paths for codec in codecs for quality in chosen_qualities[codec.name]]
    outcomes: list[_TaskOutcome] = []
    with tqdm(total=len(tasks), desc="bench", unit="level", file=sys.stderr,
              disable=not progress) as bar:
        def on_done(outcome: _TaskOutcome) -> None:
            outcomes.append(outcome)
            if outcome.error:
                tqdm.write(f"error: {outcome.error}", file=sys.stderr)
            bar.update(1)

        _execute(tasks, max(1, jobs), on_done)

    codec_order = {c.name: i for i, c in enumerate(codecs)}
    image_order = {p.name: i for i, p in enumerate(image_paths)}
    records = sorted((r for o in outcomes for r in o.records),
                     key=lambda r: (codec_order[r.codec],
                                    chosen_qualities[r.codec].index(r.quality),
                                    image_order[r.image]))
    curves = summarize(records, codecs, chosen_qualities)
    names = [c.name for c in codecs]
    if kept:  # the earlier run's codecs first, in its order; their curves from its rows
        earlier = summarize_records(kept)
        names = list(earlier) + names
        curves = {**earlier, **curves}
        records = kept + records
    result = BenchResult(
        dataset=directory.resolve().name, directory=directory,
        images=[p.name for p in image_paths], codecs=names,
        records=records, curves=curves, bd_rates=compute_bd_rates(curves), skipped=skipped,
        errors=sorted(o.error for o in outcomes if o.error))
    result.files = write_outputs(result, out_dir)
    return result


# --------------------------------------------------------------------------- terminal table


def _fmt(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else "inf"


def format_table(result: BenchResult) -> str:
    """Plain-text tables: mean metrics per codec and quality, then BD-rates with reasons."""
    width = max([14, *(len(name) + 2 for name in [*result.curves, *result.skipped])])  # shaec:NAME can be long
    lines = [f"{result.dataset}: {_count(len(result.images), 'image')}, "
             f"{_count(len(result.curves), 'codec')} (means over images)", ""]
    header = (f"{'codec':<{width}}{'quality':>8}{'bpp':>9}{'PSNR':>8}{'MS-SSIM':>9}"
              f"{'MS-SSIM dB':>11}{'enc ms':>9}{'dec ms':>9}")
    lines += [header, "-" * len(header)]
    for name, curve in result.curves.items():
        for i, quality in enumerate(curve.quality):
            lines.append(
                f"{name:<{width}}{quality!s:>8}{curve.bpp[i]:>9.4f}{_fmt(curve.psnr[i], '.2f'):>8}"
                f"{curve.ms_ssim[i]:>9.4f}{_fmt(curve.ms_ssim_db[i], '.2f'):>11}"
                f"{curve.encode_s[i] * 1e3:>9.1f}{curve.decode_s[i] * 1e3:>9.1f}")
    for name, reason in result.skipped.items():
        lines.append(f"{name:<{width}}skipped: {reason}")
    lines += ["", "BD-rate on mean bpp (negative = fewer bits than the anchor at equal quality)"]
    if not result.bd_rates:
        lines.append("no BD-rates: need jpeg or bpg/bpg-x265 and at least one other codec")
    else:
        header = f"{'codec':<{width}}{'anchor':<10}{'metric':<12}{'BD-rate':>9}  quality interval"
        lines += [header, "-" * len(header)]
        for e in result.bd_rates:
            label = BD_METRICS[e.metric]
            if e.result.percent is None:
                lines.append(f"{e.codec:<{width}}{e.anchor:<10}{label:<12}{'n/a':>9}  {e.result.reason}")
            else:
                low, high = e.result.quality_range or (math.nan, math.nan)
                lines.append(f"{e.codec:<{width}}{e.anchor:<10}{label:<12}{e.result.percent:>+8.2f}%"
                             f"  {low:.2f}..{high:.2f} dB")
    if result.errors:
        lines += ["", f"{len(result.errors)} failed image/codec pairs:"]
        lines += [f"  {error}" for error in result.errors]
    return "\n".join(lines)
