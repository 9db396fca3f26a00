"""Speed and memory of shaec next to JPEG and BPG: seconds per megapixel and peak RSS.

    python scripts/bench_speed.py                        # val photo, 2000x1500 and 6000x4000
    python scripts/bench_speed.py --skip-large --repeat 1 --image samples/coffee.png
    python scripts/bench_speed.py --json speed.json --quality 5

Prints one markdown table (and notes) to stdout. Rows, for each image size:

* ``shaec`` / CLI process: whole ``shaec encode`` and ``shaec decode`` processes, wall time
  including interpreter start-up, imports, model loading and image file reading/writing (the
  decoder writes a PNG with Pillow's default compression). They run with Python's bytecode
  cache on (in a folder of their own, filled by one untimed encode and decode), as an installed
  package has it: where PYTHONDONTWRITEBYTECODE is set, as in some containers, every process
  would otherwise compile imgcodec's source again (about 0.1 s).
* ``shaec`` / library: ``Codec.encode`` / ``Codec.decode`` in-process, model already loaded and
  ONNX sessions created (a warm-up call, not timed).
* ``jpeg`` / library: Pillow (libjpeg-turbo), quality 75, 4:2:0, in-process.
* ``bpg`` (real bpgenc/bpgdec) or, without them, ``bpg-x265`` (imgcodec.bench's emulation
  through ffmpeg + libx265), QP 32, only at the base image size: these are command-line
  tools, so their times include process start-up and the temporary files or pipes.

Times are the median of ``--repeat`` runs.

Peak RSS (MiB), measured so that numbers never accumulate or leak between measurements:

* Processes this script starts (``shaec`` CLI, and bpgenc/ffmpeg) run under GNU time
  (``/usr/bin/time -f %M``), which reports the peak RSS of that one child. Not
  ``RUSAGE_CHILDREN`` of this script: it is a maximum over all children rather than per child,
  and on Linux a child's ``ru_maxrss`` starts at the RSS of the process that spawned it (exec
  records the old address space's high-water mark), so a large parent would inflate it.
  Without GNU time, a tiny ``python -S`` launcher does the same with ``os.wait4`` (its own
  ~8 MiB is then a floor of the reading).
* Library rows run in a fresh worker process per (codec, operation, size); their peak is the
  worker's ``VmHWM`` (high-water mark of its own address space: interpreter, libraries, model,
  input and output). For BPG the worker's peak and the tool's peak are added (an upper bound
  of their combined footprint, as the worker holds the image while the tool runs).

Threads: every library at its default. ONNX Runtime uses one intra-op thread per physical
core (``intra_op_num_threads`` = 0); the range coder (constriction), numpy and Pillow's
libjpeg-turbo run on one thread; bpg-x265 uses one x265 worker pool (as imgcodec.bench
configures it); bpgenc runs with its built-in defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GNU_TIME = "/usr/bin/time"
RSS_TARGET_MIB = 3 * 1024  # target for the large image: peak RSS <= 3 GB
BASE_WIDTH, BASE_HEIGHT = 768, 512

#: Started with ``python -S LAUNCHER LOG CMD...`` when GNU time is missing: runs CMD, appends
#: "<peak RSS KiB> <wall seconds>" of that child to LOG, exits with its status.
LAUNCHER = """\
import os, sys, time
log, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(log, "a") as fh:
    fh.write(f"{usage.ru_maxrss} {wall:.6f}\\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


# --------------------------------------------------------------------------------------------
# Measuring child processes


class ChildMeter:
    """Runs commands and reports each one's wall time and own peak RSS (KiB)."""

    def __init__(self, method: str, workdir: Path) -> None:
        self.workdir = workdir
        self.launcher = workdir / "rss_launcher.py"
        self.launcher.write_text(LAUNCHER)
        if method == "auto":
            method = "gnu-time" if gnu_time_works(workdir) else "wait4"
        if method == "gnu-time" and not gnu_time_works(workdir):
            raise SystemExit(f"{GNU_TIME} is missing or is not GNU time; use --rss-method wait4")
        self.method = method

    @property
    def description(self) -> str:
        if self.method == "gnu-time":
            return f"GNU time ({GNU_TIME} -f %M) around each child process"
        return "os.wait4 in a small `python -S` launcher around each child process"

    def prefix(self, log: Path) -> list[str]:
        """Command prefix that appends the child's peak RSS (and maybe wall time) to log."""
        if self.method == "gnu-time":
            return [GNU_TIME, "-f", "%M", "-a", "-o", str(log)]
        return [sys.executable, "-S", str(self.launcher), str(log)]

    def run(self, command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
        """Run command (in env, default this process's); (wall seconds, peak RSS KiB). Raises
        RuntimeError if it fails."""
        log = Path(tempfile.mkstemp(dir=self.workdir, suffix=".rss")[1])
        start = time.perf_counter()
        done = subprocess.run(self.prefix(log) + command, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False, env=env)
        wall = time.perf_counter() - start
        readings = read_rss_log(log)
        log.unlink()
        if done.returncode != 0 or not readings:
            message = done.stderr.decode(errors="replace").strip()[-1500:]
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {message}")
        peak, inner_wall = readings[-1]
        return (inner_wall if inner_wall is not None else wall), peak


def gnu_time_works(workdir: Path) -> bool:
    if not os.access(GNU_TIME, os.X_OK):
        return False
    log = workdir / "probe.rss"
    try:
        done = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(log), "true"], capture_output=True, check=False)
        return done.returncode == 0 and bool(read_rss_log(log))
    except OSError:
        return False
    finally:
        log.unlink(missing_ok=True)


def read_rss_log(log: Path) -> list[tuple[int, float | None]]:
    """(peak KiB, wall seconds or None) per run; GNU time's 'Command exited...' lines skipped."""
    readings = []
    for line in log.read_text().splitlines() if log.exists() else []:
        fields = line.split()
        if fields and fields[0].isdigit():
            readings.append((int(fields[0]), float(fields[1]) if len(fields) > 1 else None))
    return readings


def own_peak_kib() -> int:
    """Peak RSS of this process's own address space (VmHWM), in KiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # may include pre-exec memory
    return peak // 1024 if sys.platform == "darwin" else peak


# --------------------------------------------------------------------------------------------
# Worker: one library measurement in a fresh process


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one (codec, op) measurement; called in a fresh interpreter via --worker."""
    codec_name, op, repeat = spec["codec"], spec["op"], spec["repeat"]
    tool_log = None
    if spec.get("tool_shims"):
        tool_log = install_tool_shims(spec["tool_shims"], spec["rss_method"], Path(spec["workdir"]))

    if op == "encode":
        from imgcodec.imageio import load_image

        payload = load_image(spec["input"]).rgb
    else:
        payload = Path(spec["input"]).read_bytes()
    setup_kib = own_peak_kib()

    if codec_name == "shaec":
        from imgcodec.bitstream import unpack
        from imgcodec.codec import get_codec

        codec = get_codec()
        warm = codec.encode(np.full((64, 64, 3), 128, np.uint8), spec["quality"]).data  # creates the sessions
        if op == "encode":
            call = lambda: codec.encode(payload, spec["quality"]).data  # noqa: E731
        else:
            codec.decode(unpack(warm))
            call = lambda: codec.decode(unpack(payload))  # noqa: E731
    else:
        from imgcodec.bench.codecs import get_codecs

        codec = get_codecs([codec_name])[0]
        tiny = np.full((16, 16, 3), 128, np.uint8)
        warm = codec.encode(tiny, spec["quality"])
        if op == "encode":
            call = lambda: codec.encode(payload, spec["quality"])  # noqa: E731
        else:
            codec.decode(warm, 16, 16)
            call = lambda: codec.decode(payload, spec["width"], spec["height"])  # noqa: E731
    if tool_log is not None:
        tool_log.write_text("")  # forget the warm-up runs

    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    result: dict[str, Any] = {"times": times, "peak_kib": own_peak_kib(), "setup_kib": setup_kib}
    if op == "encode":
        Path(spec["output"]).write_bytes(out)
        result["bytes"] = len(out)
    if tool_log is not None:
        readings = read_rss_log(tool_log)
        result["tool_peak_kib"] = max((r[0] for r in readings), default=0)
    return result


def install_tool_shims(tools: list[str], method: str, workdir: Path) -> Path:
    """Put wrappers for tools first on PATH, so each call's peak RSS is appended to a log."""
    shim_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="shims-"))
    log = shim_dir / "tools.rss"
    log.write_text("")
    launcher = workdir / "rss_launcher.py"
    for tool in tools:
        real = shutil.which(tool)
        if real is None:
            continue
        if method == "gnu-time":
            line = f'exec {GNU_TIME} -f %M -a -o "{log}" "{real}" "$@"'
        else:
            line = f'exec "{sys.executable}" -S "{launcher}" "{log}" "{real}" "$@"'
        shim = shim_dir / tool
        shim.write_text(f"#!/bin/sh\n{line}\n")
        shim.chmod(0o755)
    os.environ["PATH"] = f"{shim_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return log


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {spec['codec']} {spec['op']} failed: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Test images


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 6000x4000, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return width, height


def default_image() -> Path:
    """A 768x512 photo from data/val if there is one, else samples/coffee.png."""
    from PIL import Image

    val = REPO / "data" / "val"
    if val.is_dir():
        for path in sorted(val.iterdir()):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
                with Image.open(path) as im:
                    if im.size == (BASE_WIDTH, BASE_HEIGHT):
                        return path
    return REPO / "samples" / "coffee.png"


def photo_like(photo: np.ndarray, width: int, height: int, seed: int = 0,
               upscale: float = 2.0, noise_sigma: float = 2.0) -> np.ndarray:
    """A width x height image made from a photo: Lanczos 2x upscale, mirrored tiling, mild noise.

    Mirrored tiles have no seams; a moderate upscale keeps detail close to the original
    photo's (a single 8x upscale would be unnaturally smooth, hence cheap to code); Gaussian
    noise (sigma 2) stands in for sensor noise and breaks exact repetition.
    """
    from PIL import Image

    src = Image.fromarray(photo)
    up = np.asarray(src.resize((round(src.width * upscale), round(src.height * upscale)),
                               Image.Resampling.LANCZOS))  # h,w,3
    block = np.concatenate([np.concatenate([up, up[:, ::-1]], axis=1),
                            np.concatenate([up[::-1], up[::-1, ::-1]], axis=1)], axis=0)  # 2h,2w,3
    reps = (-(-height // block.shape[0]), -(-width // block.shape[1]), 1)
    out = np.ascontiguousarray(np.tile(block, reps)[:height, :width])  # H,W,3
    rng = np.random.default_rng(seed)
    for r0 in range(0, height, 256):  # in bands: bounded temporary memory
        band = out[r0:r0 + 256].astype(np.float32)
        band += rng.normal(0.0, noise_sigma, band.shape).astype(np.float32)
        out[r0:r0 + 256] = np.clip(np.rint(band), 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------------------------
# Measurements


def shaec_command() -> list[str]:
    """The installed console script itself (not a pyenv-style shim), else python -m."""
    script = Path(sysconfig.get_path("scripts")) / "shaec"
    if script.exists():
        return [str(script)]
    found = shutil.which("shaec")
    return [found] if found else [sys.executable, "-m", "imgcodec.cli"]


def cli_environment(workdir: Path) -> dict[str, str]:
    """The environment of the CLI processes: this one's, with Python's bytecode cache on, in a
    folder under workdir (an installed package ships compiled; see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def measure_cli(meter: ChildMeter, image: Path, workdir: Path, tag: str, quality: int,
                repeat: int) -> dict[str, Any]:
    shae, png = workdir / f"{tag}.cli.shae", workdir / f"{tag}.cli.png"
    shaec = shaec_command()
    env = cli_environment(workdir)
    encode = shaec + ["encode", str(image), "-o", str(shae), "-q", str(quality), "-f"]
    decode = shaec + ["decode", str(shae), "-o", str(png), "-f"]
    meter.run(encode, env)  # untimed, as is the next: they fill the bytecode cache
    meter.run(decode, env)
    enc = [meter.run(encode, env) for _ in range(repeat)]
    dec = [meter.run(decode, env) for _ in range(repeat)]
    return {"enc_times": [t for t, _ in enc], "dec_times": [t for t, _ in dec],
            "enc_peak_kib": max(p for _, p in enc), "dec_peak_kib": max(p for _, p in dec),
            "bytes": shae.stat().st_size}


def measure_library(codec: str, image: Path, workdir: Path, tag: str, quality: int, repeat: int,
                    width: int, height: int, meter: ChildMeter) -> dict[str, Any]:
    encoded = workdir / f"{tag}.{codec}.lib"
    shims = {"bpg": ["bpgenc", "bpgdec"], "bpg-x265": ["ffmpeg"]}.get(codec, [])
    common = {"codec": codec, "quality": quality, "repeat": repeat, "width": width, "height": height,
              "tool_shims": shims, "rss_method": meter.method, "workdir": str(workdir)}
    enc = run_worker({**common, "op": "encode", "input": str(image), "output": str(encoded)})
    dec = run_worker({**common, "op": "decode", "input": str(encoded)})
    return {"enc_times": enc["times"], "dec_times": dec["times"],
            "enc_peak_kib": enc["peak_kib"] + enc.get("tool_peak_kib", 0),
            "dec_peak_kib": dec["peak_kib"] + dec.get("tool_peak_kib", 0),
            "enc_worker_peak_kib": enc["peak_kib"], "dec_worker_peak_kib": dec["peak_kib"],
            "enc_tool_peak_kib": enc.get("tool_peak_kib"), "dec_tool_peak_kib": dec.get("tool_peak_kib"),
            "setup_kib": enc["setup_kib"], "bytes": enc["bytes"]}


def finish_row(row: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    mpix = row["width"] * row["height"] / 1e6
    enc, dec = statistics.median(raw["enc_times"]), statistics.median(raw["dec_times"])
    row.update({
        "megapixels": round(mpix, 4),
        "bpp": 8 * raw["bytes"] / (row["width"] * row["height"]),
        "encode_s": enc, "decode_s": dec,
        "encode_s_per_mpix": enc / mpix, "decode_s_per_mpix": dec / mpix,
        "encode_peak_rss_mib": raw["enc_peak_kib"] / 1024, "decode_peak_rss_mib": raw["dec_peak_kib"] / 1024,
        "raw": raw,
    })
    return row


# --------------------------------------------------------------------------------------------
# Output


def fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "failed"


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ["codec", "interface", "image", "MPix", "bpp", "enc s", "dec s", "enc s/MPix",
            "dec s/MPix", "enc peak RSS MiB", "dec peak RSS MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r["label"], r["interface"], f"{r['width']}x{r['height']}",
                 f"{r['width'] * r['height'] / 1e6:.4g}", fmt(r.get("bpp"), ".3f"),
                 fmt(r.get("encode_s"), ".4g"), fmt(r.get("decode_s"), ".4g"),
                 fmt(r.get("encode_s_per_mpix"), ".4g"), fmt(r.get("decode_s_per_mpix"), ".4g"),
                 fmt(r.get("encode_peak_rss_mib"), ".0f"), fmt(r.get("decode_peak_rss_mib"), ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=None,
                        help="base photo (default: a 768x512 photo from data/val, else samples/coffee.png)")
    parser.add_argument("--large", type=parse_size, default=(6000, 4000), metavar="WxH",
                        help="large synthesized image (default 6000x4000)")
    parser.add_argument("--mid", type=parse_size, action="append", default=None, metavar="WxH",
                        help="intermediate size(s) for the scaling rows (repeatable; default 2000x1500)")
    parser.add_argument("--skip-large", action="store_true", help="only the base image")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is shown")
    parser.add_argument("--quality", type=int, default=None, help="shaec level (default: the model's default)")
    parser.add_argument("--jpeg-quality", type=int, default=75)
    parser.add_argument("--bpg-qp", type=int, default=32)
    parser.add_argument("--rss-method", choices=("auto", "gnu-time", "wait4"), default="auto",
                        help="how child processes' peak RSS is read (default: GNU time if present)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    from imgcodec.bench.codecs import CODECS
    from imgcodec.imageio import load_image
    from imgcodec.zoo import find_model

    info = find_model()
    quality = info.default_quality if args.quality is None else args.quality
    if quality not in info.qualities:
        parser.error(f"--quality must be {info.qualities[0]}..{info.qualities[-1]}")
    image_path = args.image or default_image()
    photo = load_image(image_path).rgb
    height, width = photo.shape[:2]

    if CODECS["bpg"].available():
        bpg, bpg_label = "bpg", f"bpg (bpgenc, QP {args.bpg_qp})"
    elif CODECS["bpg-x265"].available():
        bpg, bpg_label = "bpg-x265", f"bpg-x265 (bpgenc emulation, ffmpeg libx265, QP {args.bpg_qp})"
    else:
        bpg, bpg_label = None, ""

    rows: list[dict[str, Any]] = []
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        workdir = Path(tmp)
        meter = ChildMeter(args.rss_method, workdir)
        sizes: list[tuple[str, Path, int, int]] = [("base", image_path, width, height)]
        if not args.skip_large:
            from PIL import Image

            for k, (w, h) in enumerate((args.mid or [(2000, 1500)]) + [args.large]):
                path = workdir / f"synth{k}_{w}x{h}.png"
                Image.fromarray(photo_like(photo, w, h, seed=k)).save(path, compress_level=1)
                sizes.append((f"synth{k}", path, w, h))

        for tag, path, w, h in sizes:
            plan: list[tuple[str, str, str, int]] = [("shaec", f"shaec q{quality}", "CLI process", quality),
                                                     ("shaec", f"shaec q{quality}", "library", quality),
                                                     ("jpeg", f"jpeg (Pillow, q={args.jpeg_quality})", "library",
                                                      args.jpeg_quality)]
            if tag == "base" and bpg:
                plan.append((bpg, bpg_label, "library (calls CLI tools)", args.bpg_qp))
            for codec, label, interface, q in plan:
                print(f"measuring {label} {interface} at {w}x{h} ...", file=sys.stderr, flush=True)
                row = {"codec": codec, "label": label, "interface": interface, "width": w, "height": h,
                       "quality": q, "image": str(path) if tag == "base" else f"synthesized from {image_path}"}
                try:
                    if interface == "CLI process":
                        raw = measure_cli(meter, path, workdir, tag, q, args.repeat)
                    else:
                        raw = measure_library(codec, path, workdir, tag, q, args.repeat, w, h, meter)
                    rows.append(finish_row(row, raw))
                except (RuntimeError, OSError, ValueError) as exc:
                    failures += 1
                    print(f"error: {label} {interface} {w}x{h}: {exc}", file=sys.stderr)
                    rows.append({**row, "error": str(exc)})
        rss_method = meter.description

    import onnxruntime

    notes = [
        f"model {info.name} ({info.model_id}), shaec level {quality}; base image {image_path} ({width}x{height}); "
        f"median of {args.repeat} run(s)",
        "CLI rows: whole `shaec encode`/`shaec decode` processes (start-up, imports, model load, file I/O; "
        "decode writes PNG; bytecode cached, after one untimed run); library rows: in-process calls after a "
        "warm-up, each in a fresh worker process",
        f"peak RSS of CLI processes and BPG tools: {rss_method}; library rows: VmHWM of the fresh worker "
        "(BPG: worker + tool peaks, summed)",
        f"threads: library defaults on {os.cpu_count()} logical CPUs; onnxruntime {onnxruntime.__version__} "
        "intra-op threads = physical cores; range coder, numpy, libjpeg-turbo single-threaded; "
        "bpg-x265 one x265 pool; bpgenc its defaults",
    ]
    if not args.skip_large:
        notes.append("larger sizes: the base photo upscaled 2x (Lanczos), mirror-tiled, plus Gaussian noise sigma 2")
        large = [r for r in rows if r["codec"] == "shaec" and (r["width"], r["height"]) == args.large and "error" not in r]
        if large:
            peak = max(max(r["encode_peak_rss_mib"], r["decode_peak_rss_mib"]) for r in large)
            verdict = "meets" if peak <= RSS_TARGET_MIB else "EXCEEDS"
            notes.append(f"shaec peak RSS at {args.large[0]}x{args.large[1]}: {peak:.0f} MiB, "
                         f"{verdict} the {RSS_TARGET_MIB} MiB (3 GB) target")
        for interface in ("CLI process", "library"):
            scaling = [r for r in rows if r["codec"] == "shaec" and r["interface"] == interface and "error" not in r]
            if len(scaling) >= 2:
                enc = ", ".join(f"{r['encode_s_per_mpix']:.4g}" for r in scaling)
                dec = ", ".join(f"{r['decode_s_per_mpix']:.4g}" for r in scaling)
                sizes_text = ", ".join(f"{r['width'] * r['height'] / 1e6:.1f}" for r in scaling)
                notes.append(f"shaec {interface} s/MPix at {sizes_text} MPix: encode {enc}; decode {dec}")
    if not bpg:
        notes.append("BPG skipped: neither bpgenc/bpgdec nor ffmpeg with libx265 is available")

    print(markdown(rows))
    print()
    for note in notes:
        print(f"- {note}")
    if args.json:
        meta = {"model": info.name, "model_id": info.model_id, "quality": quality, "image": str(image_path),
                "repeat": args.repeat, "rss_method": rss_method, "cpu_count": os.cpu_count(),
                "platform": platform.platform(), "onnxruntime": onnxruntime.__version__,
                "shaec_command": shaec_command(), "notes": notes}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
