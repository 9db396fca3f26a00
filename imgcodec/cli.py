"""The ``shaec`` command line: a thin layer over the library.

Commands parse options, call library functions and turn every user-caused error
(``ShaecError``, unreadable paths) into one line on stderr and exit status 1. Heavy modules
(onnxruntime, numpy-heavy codec code, torch for MS-SSIM) are imported inside the commands, so
``shaec --help`` stays fast.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, TypeVar

import click

from . import __version__
from .errors import ShaecError

F = TypeVar("F", bound=Callable[..., object])
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".ppm", ".pgm", ".pnm")


def user_errors(func: F) -> F:
    """Turn ShaecError (and OS errors about files) into click's one-line error and exit 1."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except ShaecError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:
            raise  # the reader went away: run() exits quietly
        except OSError as exc:
            name = f"'{exc.filename}': " if getattr(exc, "filename", None) else ""
            raise click.ClickException(f"{name}{exc.strerror or exc}") from None
        except MemoryError:
            raise click.ClickException("out of memory; try a smaller input") from None

    return wrapper  # type: ignore[return-value]


def _read_input(path: str) -> bytes:
    from .batch import read_limited

    return read_limited(path)


def _output_path(source: str, output: str | None, out_dir: str | None, suffix: str) -> str:
    if output:
        return output
    if source == "-":
        return "-"
    path = Path(source)
    folder = Path(out_dir) if out_dir else path.parent
    return str(folder / (path.stem + suffix))


#: `shaec decode photo.shae` writes photo.decoded.png: never photo.png, which is most likely the
#: lossless original that photo.shae was made from.
DECODED_SUFFIX = ".decoded"


def _run_files(label: str, jobs: list[tuple[str, str]], work: Callable[..., list[str]], options: object,
               workers: int) -> None:
    """Run work(source, dest, options) for each job, in this process or in `workers` processes.
    One input: its error is the command's error. Several: each error is reported, the others
    still run, and the command fails at the end with a count."""
    if len(jobs) == 1:
        source, dest = jobs[0]
        bar = _TileProgress(f"{label} {source}", quiet=getattr(options, "quiet", False))
        try:
            lines = work(source, dest, options, bar.update)
        except ShaecError as exc:
            raise ShaecError(f"{source}: {exc}") from None
        finally:
            bar.close()
        for line in lines:
            click.echo(line, err=True)
        return
    failures = 0
    with click.progressbar(length=len(jobs), label=label, file=sys.stderr, show_pos=True) as bar:
        if workers > 1:
            from dataclasses import replace

            from .workers import threads_per_worker, worker_pool

            workers = min(workers, len(jobs))
            options = replace(options, threads=threads_per_worker(workers))  # type: ignore[type-var]
            with worker_pool(workers) as pool:
                futures = [(source, pool.submit(work, source, dest, options)) for source, dest in jobs]
                for source, future in futures:  # in input order, each as soon as it is done
                    failures += _report(source, future.result, bar)
        else:
            for source, dest in jobs:
                failures += _report(source, lambda s=source, d=dest: work(s, d, options), bar)
    if failures:
        raise click.ClickException(f"{failures} of {len(jobs)} inputs failed")


class _TileProgress:
    """A progress bar over the tiles of one large image, shown from the first report on, and
    only when there is more than one tile."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet = label, quiet
        self.bar: object | None = None
        self.shown = 0

    def update(self, done: int, total: int) -> None:
        if self.quiet or total <= 1:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True)
            self.bar.__enter__()  # type: ignore[attr-defined]
        self.bar.update(done - self.shown)  # type: ignore[attr-defined]
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)  # type: ignore[attr-defined]
            self.bar = None


def _report(source: str, get_lines: Callable[[], list[str]], bar: object) -> int:
    """Print one file's lines (or its error); 1 if it failed."""
    try:
        lines = get_lines()
    except ShaecError as exc:
        click.echo(f"\nerror: {source}: {exc}", err=True)
        bar.update(1)  # type: ignore[attr-defined]
        return 1
    for line in lines:
        click.echo(("\n" if line else "") + line, err=True)
    bar.update(1)  # type: ignore[attr-defined]
    return 0


#: Shared by encode and roundtrip; the choices are imgcodec.codec.ROUNDINGS (not imported here,
#: so that `shaec --help` stays free of numpy and onnxruntime).
rounding_option = click.option(
    "--rounding", type=click.Choice(["rd", "nearest"]), default="rd", show_default=True,
    help="rd: rate-distortion optimised rounding of the latent (smaller files at the same quality); "
         "nearest: the nearest center (faster encode).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shaec")
def main() -> None:
    """shaec: a learned image codec (soft-to-hard quantized autoencoder).

    \b
    shaec encode photo.png            writes photo.shae
    shaec decode photo.shae           writes photo.png
    shaec info photo.shae             format, model, size, rate
    shaec roundtrip photo.png --all   bytes, bpp, PSNR, MS-SSIM per level
    shaec models                      installed models and their levels
    shaec bench photos/               rate-distortion against JPEG and BPG
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("-o", "--output", help="Output file ('-' for stdout); only with one input.")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Folder for the outputs (created if missing).")
@click.option("-q", "--quality", type=int, default=None,
              help="Quality level, 1 (smallest files) to the model's highest (10 for every shipped model); "
                   "default: the model's default level (shaec models shows it).")
@click.option("-Q", "--percent", type=click.FloatRange(0, 100), default=None,
              help="Instead of -q: quality on the 0-100 scale of cwebp, avifenc and cjxl, mapped onto "
                   "the levels (0 -> 1, 100 -> 10).")
@click.option("--size", "target_size", default=None,
              help="Instead of -q: the best file that fits this size, e.g. 40KB or 1.2MB (searches the "
                   "levels, then inside the next level).")
@click.option("--bpp", "target_bpp", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Instead of -q: the best file at or below this many bits per pixel (as --size).")
@click.option("-m", "--model", default=None, help="Model name or id (default: the default model).")
@click.option("--tune", type=click.Choice(("psnr", "ssim")), default=None,  # imgcodec.zoo.TUNES
              help="Instead of -m: the default model (psnr) or a fine-tune for MS-SSIM (ssim: the "
                   "default model's, else the newest installed; `shaec models` lists them): higher "
                   "MS-SSIM and lower PSNR at the same size.  [default: psnr]")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option("-v", "--verbose", is_flag=True, help="Print notes about input conversion and rates.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--strip", is_flag=True, help="Drop the ICC profile, EXIF and XMP (kept by default).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Files encoded at a time (worker processes).")
@rounding_option
@user_errors
def encode(inputs: tuple[str, ...], output: str | None, out_dir: str | None, quality: int | None,
           percent: float | None, target_size: str | None, target_bpp: float | None, model: str | None,
           tune: str | None, force: bool, verbose: bool, quiet: bool, strip: bool, jobs: int, rounding: str) -> None:
    """Compress images (PNG, JPEG, TIFF, WebP, BMP, PPM) to .shae files (photo.png -> photo.shae).

    Prints one line per file (output, size, bits per pixel, level); with several inputs a bad
    one is reported and the others are still encoded; -j N encodes N files at a time."""
    from .batch import EncodeOptions, encode_file
    from .codec import get_codec

    if output and len(inputs) > 1:
        raise click.UsageError("-o/--output takes one input; use --out-dir for several")
    if output and output != "-" and Path(output).suffix.lower() != ".shae":
        raise ShaecError(f"-o/--output must end in .shae (shaec writes .shae files), got '{output}'")
    if sum(option is not None for option in (quality, percent, target_size, target_bpp)) > 1:
        raise ShaecError("give one of -q/--quality, -Q/--percent, --size and --bpp")
    if tune is not None:
        from .zoo import tuned_model

        if model is not None:
            raise ShaecError("give -m/--model or --tune, not both")
        model = tuned_model(tune).name
    codec = get_codec(model)
    if quality is not None and quality not in codec.qualities:
        hint = f" (for the 0-100 scale of other encoders use -Q {quality})" if 0 <= quality <= 100 else ""
        raise click.BadParameter(f"must be {codec.qualities[0]}..{codec.qualities[-1]}{hint}",
                                 param_hint="-q/--quality")
    if percent is not None:
        quality = codec.quality_of_percent(percent)
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    options = EncodeOptions(quality, _parse_size(target_size) if target_size else None, target_bpp, model, force,
                            strip, rounding, verbose, quiet)
    files = [(source, _output_path(source, output, out_dir, ".shae")) for source in inputs]
    _run_files("encoding", files, encode_file, options, jobs)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("-o", "--output", help="Output image (format from the extension; '-' for PNG on stdout).")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Folder for the outputs.")
@click.option("--format", "fmt", default=None, help="Output format when it cannot come from a name (png, webp, ...).")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--max-pixels", type=click.IntRange(0), default=None,
              help="Refuse files that declare more pixels than this (0: no limit). "
                   "[default: 134217728, like Pillow's decompression-bomb limit]")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Files decoded at a time (worker processes).")
@user_errors
def decode(inputs: tuple[str, ...], output: str | None, out_dir: str | None, fmt: str | None, force: bool,
           max_pixels: int | None, quiet: bool, jobs: int) -> None:
    """Decompress .shae files to images: photo.shae -> photo.decoded.png by default, so that a
    decode never lands on the original photo.png (with --out-dir: DIR/photo.png). -o or --format
    choose another format."""
    from .batch import DecodeOptions, decode_file

    if output and len(inputs) > 1:
        raise click.UsageError("-o/--output takes one input; use --out-dir for several")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    # Beside the .shae file the name says it is a decode; in a folder of its own it need not.
    suffix = ("" if out_dir else DECODED_SUFFIX) + "." + (fmt or "png").lower().lstrip(".")
    files = [(source, _output_path(source, output, out_dir, suffix)) for source in inputs]
    _run_files("decoding", files, decode_file, DecodeOptions(fmt, force, max_pixels, quiet), jobs)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(allow_dash=True))
@user_errors
def info(inputs: tuple[str, ...]) -> None:
    """Show what a .shae file holds: format, model, quality, size, rate and segments."""
    from . import bitstream
    from .errors import ModelNotFoundError
    from .zoo import find_model_by_id

    for source in inputs:
        data = _read_input(source)
        try:
            shae = bitstream.unpack(data)
        except ShaecError as exc:
            raise ShaecError(f"{source}: {exc}") from None
        try:
            model = find_model_by_id(shae.model_id).name
        except ModelNotFoundError:
            model = "not installed"
        pixels = shae.width * shae.height
        click.echo(f"{source}:")
        click.echo(f"  format      .shae version {bitstream.FORMAT_VERSION}")
        click.echo(f"  model       {shae.model_id.hex()} ({model})")
        step = shae.segment(bitstream.SEGMENT_LEVEL_STEP)
        if step is not None and len(step.payload) == 2:  # a position between two levels (shae-v9)
            click.echo(f"  quality     {shae.level} + {int.from_bytes(step.payload, 'little') / 65536:.3f}")
        else:
            click.echo(f"  quality     {shae.level}")
        click.echo(f"  size        {shae.width}x{shae.height}")
        click.echo(f"  bytes       {len(data)} ({8 * len(data) / pixels:.4f} bpp)")
        for name, length in bitstream.describe(shae):
            click.echo(f"  segment     {name}: {length} bytes")
        click.echo(f"  container   {bitstream.overhead_bytes(shae)} bytes (header, segment table, CRC32)")


@main.command()
@user_errors
def models() -> None:
    """List installed models, their quality levels and validation results."""
    from .errors import ModelNotFoundError
    from .zoo import TUNES, default_model, list_models, models_dir, tuned_model

    infos = list_models()
    default = default_model().name
    chosen = {}  # the model each --tune encodes with
    for tune in TUNES:
        try:
            chosen[tuned_model(tune).name] = tune
        except ModelNotFoundError:
            pass
    click.echo(f"models in {models_dir()}:")
    for info in infos:
        entry = info.manifest_entry
        role = "default, encodes and decodes" if info.name == default else (
            "retired: decodes only" if info.decode_only else
            f"{info.tune} tune of {info.tuned_from} ("
            + (f"--tune {info.tune})" if chosen.get(info.name) == info.tune else "-m)")
            if info.tuned_from else "encodes and decodes (-m)")
        steps = entry.get("total_steps", entry.get("trained_steps"))  # the whole chain of warm starts
        click.echo(f"{info.name} ({info.model_id}) [{role}]: qualities 1..{info.num_levels}, default quality "
                   f"{info.default_quality}, {f'{steps:,}' if isinstance(steps, int) else '?'} training steps")
        levels = entry.get("validation", {}).get("levels", [])
        if levels:
            click.echo(f"  {'q':>3} {'bpp':>7} {'PSNR dB':>8} {'MS-SSIM':>8}   (mean over "
                       f"{entry['validation']['images']} validation photos"
                       + (f", {entry['validation']['rounding']} rounding)" if "rounding" in entry["validation"] else ")"))
            for row in levels:
                click.echo(f"  {row['quality']:>3} {row['bpp']:>7.4f} {row['psnr']:>8.2f} {row['ms_ssim']:>8.4f}")


@main.command()
@click.argument("image", type=click.Path(allow_dash=True))
@click.option("-q", "--quality", "qualities", type=int, multiple=True,
              help="Quality level(s) to try (repeatable); default: the model's default.")
@click.option("--all", "all_levels", is_flag=True, help="Try every shipped quality level.")
@click.option("-m", "--model", default=None, help="Model name or id.")
@click.option("--save-dir", type=click.Path(file_okay=False), default=None,
              help="Also keep the .shae files and decoded PNGs here.")
@rounding_option
@user_errors
def roundtrip(image: str, qualities: tuple[int, ...], all_levels: bool, model: str | None,
              save_dir: str | None, rounding: str) -> None:
    """Encode and decode IMAGE; print bytes, bpp (real and estimated), PSNR, MS-SSIM and times."""
    import time

    from .bitstream import unpack
    from .codec import get_codec
    from .imageio import atomic_write, encode_image_bytes, load_image
    from .metrics import BENCH_EXTRA_HINT, ms_ssim_available, ms_ssim_rgb, psnr_rgb

    codec = get_codec(model)
    with_ms_ssim = ms_ssim_available()
    levels = codec.qualities if all_levels else list(qualities) or [codec.info.default_quality]
    for q in levels:
        if q not in codec.qualities:
            raise click.BadParameter(f"must be {codec.qualities[0]}..{codec.qualities[-1]}", param_hint="-q/--quality")
    loaded = load_image(sys.stdin.buffer.read() if image == "-" else image)
    height, width = loaded.rgb.shape[:2]
    click.echo(f"{image}: {width}x{height}, model {codec.info.name} ({codec.info.model_id})")
    click.echo(f"{'q':>3} {'bytes':>9} {'bpp':>8} {'est bpp':>8} {'PSNR dB':>8} {'MS-SSIM':>8} {'enc s':>6} {'dec s':>6}")
    import numpy as np

    pixels = loaded.rgb if loaded.alpha is None else np.dstack([loaded.rgb, loaded.alpha])  # as encode codes it
    for q in levels:
        started = time.perf_counter()
        result = codec.encode(pixels, q, rounding, loaded.metadata)
        encoded = time.perf_counter()
        rec = codec.decode(unpack(result.data))
        decoded = time.perf_counter()
        ms_ssim = f"{ms_ssim_rgb(loaded.rgb, rec[..., :3]):>8.5f}" if with_ms_ssim else f"{'-':>8}"
        click.echo(f"{q:>3} {len(result.data):>9} {result.bpp:>8.4f} {result.estimated_bpp:>8.4f} "
                   f"{psnr_rgb(loaded.rgb, rec[..., :3]):>8.2f} {ms_ssim} "
                   f"{encoded - started:>6.2f} {decoded - encoded:>6.2f}")
        if save_dir:
            folder = Path(save_dir)
            folder.mkdir(parents=True, exist_ok=True)
            stem = "stdin" if image == "-" else Path(image).stem
            atomic_write(folder / f"{stem}.q{q}.shae", result.data, force=True)
            atomic_write(folder / f"{stem}.q{q}.png", encode_image_bytes(rec, None, "png"), force=True)
    if not with_ms_ssim:
        click.echo(f"MS-SSIM needs the bench extra: {BENCH_EXTRA_HINT}", err=True)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--codecs", default=None,
              help="Comma-separated codecs (default: all available); shaec is the default model, shaec:NAME "
                   "any installed model.")
@click.option("--out", "out_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Folder for results.json, results.csv and the RD plots.")
@click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("-f", "--force", is_flag=True, help="Overwrite the results of an earlier run in --out.")
@click.option("--update", is_flag=True,
              help="Run only --codecs again and keep the other codecs' results of the earlier run in --out "
                   "(the same images).")
@click.option("--crops", "crops_only", is_flag=True,
              help="Only write OUT/crops.png: the first photo's most detailed square by every codec at shaec's "
                   "file size, side by side.")
@user_errors
def bench(directory: str, codecs: str | None, out_dir: str, jobs: int, force: bool, update: bool,
          crops_only: bool) -> None:
    """Rate-distortion of shaec against JPEG, WebP, AVIF, BPG and others on every image in DIRECTORY."""
    from .metrics import BENCH_EXTRA_HINT, ms_ssim_available

    if not ms_ssim_available():
        raise click.ClickException(f"shaec bench measures MS-SSIM and needs the bench extra: {BENCH_EXTRA_HINT}")
    from .bench import format_table, run_bench

    names = [c.strip() for c in codecs.split(",")] if codecs else None
    if crops_only and update:
        raise ShaecError("--crops writes one picture and keeps no results; it takes no --update")
    if crops_only:
        _bench_crops(Path(directory), names, Path(out_dir), force)
        return
    if update and not names:
        raise ShaecError("--update runs the codecs named by --codecs again; name them")
    if (Path(out_dir) / "results.json").exists() and not (force or update):
        raise ShaecError(f"'{out_dir}' holds the results of an earlier run; use -f/--force to overwrite them "
                         "or --update to run some codecs again")
    try:
        result = run_bench(Path(directory), names, Path(out_dir), jobs=jobs, progress=True, update=update)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_table(result))
    click.echo("wrote " + ", ".join(str(path) for path in result.files.values()), err=True)


def _bench_crops(directory: Path, names: list[str] | None, out_dir: Path, force: bool) -> None:
    from .bench.codecs import get_codecs
    from .bench.crops import matched_tiles, write_crops
    from .bench.runner import find_images
    from .imageio import load_image

    dest = out_dir / "crops.png"
    if dest.exists() and not force:
        raise ShaecError(f"'{dest}' exists; use -f/--force to overwrite")
    photo = find_images(directory)[0]
    selected = [c for c in get_codecs(names) if c.available()]
    shaec = next((c for c in selected if c.name == "shaec"), None)
    if shaec is None:
        raise ShaecError("--crops compares against shaec: include it in --codecs")
    rgb = load_image(str(photo)).rgb
    tiles = matched_tiles(rgb, shaec, [c for c in selected if c.name != "shaec"])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_crops(tiles, dest, f"{photo.name}: every codec at (at most) shaec's file size, 1:1 crop")
    for tile in tiles:
        click.echo(tile.label)
    click.echo(f"wrote {dest}", err=True)


@main.group()
def weights() -> None:
    """Compress neural-network weights (PyTorch state_dicts, safetensors, ONNX initializers) to .shaw files.

    Large float tensors are quantized to a uniform grid with a dead zone (small weights become
    0) and entropy-coded; biases, norms and integer buffers are kept exactly (or float biases and
    norms as float16, --small-floats). With --lossless nothing changes: float weights are
    entropy-coded exactly from their bit patterns. PyTorch files need PyTorch and ONNX models the
    onnx package (pip install 'shaec[train]'); safetensors files need nothing more."""


@weights.command("compress")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default=None, help="Output .shaw file [default: NAME.shaw beside the input].")
@click.option("--bits-per-weight", type=click.FloatRange(0.05, 16), default=None,
              help="Average bits per quantized weight [default: 3].")
@click.option("--size", "size", default=None, help="Target file size instead, e.g. 200KB or 1.5MB.")
@click.option("--min-size", type=click.IntRange(1), default=1024, show_default=True,
              help="Tensors with fewer values are not quantized.")
@click.option("--small-floats", type=click.Choice(["exact", "float16"]), default="exact", show_default=True,
              help="How float tensors that are not quantized (biases, norms) are stored.")
@click.option("--deadzone", type=click.FloatRange(0, 0.5), default=0.2, show_default=True,
              help="Magnitudes below 0.5 + this many steps become 0, and all are rounded toward 0 by that "
                   "much: smaller files, but a deep network's layers shrink with it; 0 rounds plainly.")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ONNX models: an .npz of sample inputs (one array per graph input, batch first); the "
                   "bits then go where the outputs need them (one model run per quantized tensor).")
@click.option("--lossless", is_flag=True,
              help="Change nothing: float tensors are entropy-coded exactly from their bit patterns (16-bit ones, "
                   "and float32 ones trained in bf16, in far fewer bits), the others stored as they are.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@user_errors
def weights_compress(model_file: str, output: str | None, bits_per_weight: float | None, size: str | None,
                     min_size: int, small_floats: str, deadzone: float, calibration: str | None,
                     lossless: bool, force: bool) -> None:
    """Compress MODEL_FILE (.pt/.pth state_dict or checkpoint, .safetensors or a sharded model's
    .safetensors.index.json, or .onnx) to a .shaw file."""
    import time

    from .batch import check_destination, human_size
    from .imageio import atomic_write
    from .weights.codec import WeightCodecConfig
    from .weights.model_files import compress_model, default_shaw_path, model_bytes, read_calibration

    if bits_per_weight is not None and size is not None:
        raise ShaecError("give --bits-per-weight or --size, not both")
    if lossless and (bits_per_weight is not None or size or calibration or small_floats != "exact"):
        raise ShaecError("--lossless changes no value: it takes no --bits-per-weight, --size, --calibration "
                         "or --small-floats float16")
    target_bytes = _parse_size(size) if size else None
    config = WeightCodecConfig(min_size=min_size, target_bytes=target_bytes, small_floats=small_floats,
                               target_bits_per_weight=None if target_bytes else (bits_per_weight or 3.0),
                               deadzone=deadzone, lossless=lossless)
    dest = output or str(default_shaw_path(Path(model_file)))
    check_destination(model_file, dest, force)
    started = time.perf_counter()
    data = compress_model(Path(model_file), config, read_calibration(Path(calibration)) if calibration else None)
    atomic_write(dest, data, force=force)
    original = model_bytes(Path(model_file))
    click.echo(f"{model_file} -> {dest}  {human_size(original)} -> {human_size(len(data))}  "
               f"({original / len(data):.1f}x, {'calibrated, ' if calibration else ''}{'lossless, ' if lossless else ''}"
               f"{time.perf_counter() - started:.1f} s)", err=True)


@weights.command("decompress")
@click.argument("shaw_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default=None,
              help="Output .onnx, .safetensors or .pt file [default: SHAW.decoded.onnx for a file compressed "
                   "from an ONNX model, else SHAW.decoded.pt].")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@user_errors
def weights_decompress(shaw_file: str, output: str | None, force: bool) -> None:
    """Write the decoded tensors of SHAW_FILE as a runnable ONNX model (when the file carries its
    graph), a safetensors file, or a PyTorch state_dict (torch.load + load_state_dict), by the
    output's extension."""
    from .batch import check_destination
    from .imageio import atomic_write
    from .weights.model_files import decompress_model, output_form, read_model

    graph, tensors = read_model(Path(shaw_file).read_bytes())
    dest = output or str(Path(shaw_file).with_suffix(".decoded.onnx" if graph is not None else ".decoded.pt"))
    check_destination(shaw_file, dest, force)
    form = output_form(Path(dest))
    atomic_write(dest, decompress_model(graph, tensors, form), force=force)
    click.echo(f"{shaw_file} -> {dest}  {len(tensors)} tensors{' and the graph' if form == 'onnx' else ''}", err=True)


@weights.command("info")
@click.argument("shaw_file", type=click.Path(exists=True, dir_okay=False))
@user_errors
def weights_info(shaw_file: str) -> None:
    """Per-tensor table: shape, codec, centers, symbol contexts, kept fraction, bits per weight, bytes."""
    from .weights.codec import describe
    from .weights.container import unpack

    data = Path(shaw_file).read_bytes()
    rows = [describe(r) for r in unpack(data)]
    click.echo(f"{shaw_file}: {len(rows)} tensors, {len(data)} bytes")
    click.echo(f"{'name':<40} {'shape':>14} {'codec':>7} {'centers':>7} {'contexts':>15} {'kept':>6} {'bits/w':>7} "
               f"{'bytes':>9}")
    for row in rows:
        click.echo(f"{str(row['name'])[:40]:<40} {row['shape']:>14} {row['codec']:>7} {row['centers']!s:>7} "
                   f"{row['contexts']!s:>15} {row['kept']:>6.3f} {row['bits_per_weight']:>7.3f} {row['bytes']:>9}")


def _parse_size(text: str) -> int:
    """'200KB', '1.5MB', '4096' -> bytes (KB = 1000 bytes, KiB = 1024)."""
    import re

    match = re.fullmatch(r"\s*([0-9.]+)\s*(B|KB|KIB|MB|MIB|GB|GIB)?\s*", text.upper())
    if not match:
        raise ShaecError(f"cannot read the size {text!r}; write e.g. 200KB or 1.5MB")
    units = {None: 1, "B": 1, "KB": 1000, "KIB": 1024, "MB": 1000 ** 2, "MIB": 1024 ** 2, "GB": 1000 ** 3,
             "GIB": 1024 ** 3}
    return int(float(match.group(1)) * units[match.group(2)])


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that `finally` blocks run (an interrupted atomic write
    removes its temporary file, as it does on Ctrl-C) instead of the process just vanishing."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def run() -> None:
    """The console script: main(), and a quiet exit when the reader of stdout goes away
    (`shaec info *.shae | head`), as other command-line tools do."""
    import os

    # numpy asks the kernel for 2 MB pages for every array of 4 MB or more. A command touches
    # each of its large arrays a few times and then exits, so it gains little from them, and
    # where huge pages are costly to find (a fragmented or virtualised host) a megapixel encode
    # took 0.4 s longer with them (docs/bench/speed-detail.md). Before numpy is imported; a
    # value the user set wins.
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    exit_on_sigterm()
    try:
        main()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)  # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe


if __name__ == "__main__":  # pragma: no cover
    run()
