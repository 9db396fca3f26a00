"""Smoke tests of scripts/bench_speed.py, scripts/eval_prior.py and scripts/repack_tables.py on tiny inputs.

The scripts run as subprocesses (``sys.executable scripts/...``), as a user would run them;
the installed model is used as it is.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcodec.bench.codecs import CODECS
from imgcodec.zoo import find_model

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"


def smooth_photo(height: int, width: int, seed: int) -> np.ndarray:
    """Gradients, a few soft blobs and mild noise: enough structure for non-trivial symbols."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.empty((height, width, 3))
    for c in range(3):
        image[..., c] = 40 + 150 * (x / width if c != 1 else y / height)
        for _ in range(3):
            cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(8, 30)
            image[..., c] += rng.uniform(-60, 60) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
    image += rng.normal(0.0, 3.0, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for split, seed in (("train", 1), ("val", 2)):
        (root / split).mkdir()
        for k, (h, w) in enumerate(((96, 128), (80, 112))):
            Image.fromarray(smooth_photo(h, w, seed * 10 + k)).save(root / split / f"img{k}.png")
    return root


def run_script(name: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, str(SCRIPTS / name), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def parse_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The first markdown table in text: header cells and body rows of cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    assert len(split) >= 3 and set(split[1]) == {"---"}, text
    header, body = split[0], split[2:]
    assert all(len(row) == len(header) for row in body)
    return header, body


def positive_finite(cell: str) -> float:
    value = float(cell)
    assert math.isfinite(value) and value > 0, cell
    return value


# --------------------------------------------------------------------------------------------
# eval_prior.py


def test_eval_prior_table(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "prior.json"
    text = run_script("eval_prior.py", "--data", str(data_dir), "--max-images", "2", "--json", str(out),
                      "--model", "shae-v8")
    header, body = parse_table(text)
    assert header == ["level", "real bpp", "context bpp", "histogram bpp", "empirical-entropy bpp",
                      "context saving vs histogram %", "real/context", "within 3%"]
    assert [int(row[0]) for row in body] == find_model("shae-v8").qualities
    for row in body:
        for cell in row[1:5] + [row[6]]:
            positive_finite(cell)
        assert math.isfinite(float(row[5]))
        assert row[7] in ("yes", "NO")  # tiny images: the coder's fixed bytes may dominate
    result = json.loads(out.read_text())
    assert result["meta"]["val_images"] == 2 and result["meta"]["train_images"] == 2
    for row in result["rows"]:
        # Gibbs: no fixed context-free model beats each image's own empirical entropy; and the
        # range coder does not beat the ideal code length (beyond probability quantization).
        assert row["histogram_bpp"] >= row["empirical_entropy_bpp"] - 1e-9
        assert row["real_bpp"] >= row["context_bpp"] * 0.99


def test_eval_prior_limits_images(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "prior.json"
    run_script("eval_prior.py", "--data", str(data_dir), "--max-images", "1", "--max-train-images", "1",
               "--train-crop", "64", "--json", str(out), "--model", "shae-v8")
    meta = json.loads(out.read_text())["meta"]
    assert meta["val_images"] == 1 and meta["train_images"] == 1
    assert meta["train_pixels"] == 64 * 64


# --------------------------------------------------------------------------------------------
# bench_speed.py


BENCH_HEADER = ["codec", "interface", "image", "MPix", "bpp", "enc s", "dec s", "enc s/MPix", "dec s/MPix",
                "enc peak RSS MiB", "dec peak RSS MiB"]


def check_bench_rows(body: list[list[str]]) -> None:
    for row in body:
        for cell in row[3:]:
            positive_finite(cell)
        # Peak RSS of anything that loaded Python and numpy is well above a few MiB.
        assert float(row[9]) > 10 and float(row[10]) > 10


@pytest.mark.slow  # a script run of several seconds; CI runs it with the slow tests
def test_bench_speed_small(data_dir: Path, tmp_path: Path) -> None:
    image = data_dir / "val" / "img0.png"
    out = tmp_path / "speed.json"
    text = run_script("bench_speed.py", "--image", str(image), "--skip-large", "--repeat", "1",
                      "--json", str(out))
    header, body = parse_table(text)
    assert header == BENCH_HEADER
    kinds = [(row[0].split()[0], row[1]) for row in body]
    assert ("shaec", "CLI process") in kinds and ("shaec", "library") in kinds
    assert ("jpeg", "library") in kinds
    if CODECS["bpg"].available() or CODECS["bpg-x265"].available():
        assert any(kind[0] in ("bpg", "bpg-x265") for kind in kinds)
    assert all(row[2] == "128x96" for row in body)
    check_bench_rows(body)
    result = json.loads(out.read_text())
    assert len(result["rows"]) == len(body)
    assert all("error" not in row for row in result["rows"])


@pytest.mark.slow
def test_bench_speed_scaling_rows(data_dir: Path, tmp_path: Path) -> None:
    """Synthesized larger sizes, and the os.wait4 fallback for child peak RSS."""
    image = data_dir / "val" / "img1.png"
    text = run_script("bench_speed.py", "--image", str(image), "--repeat", "1", "--mid", "160x120",
                      "--large", "320x240", "--rss-method", "wait4")
    header, body = parse_table(text)
    assert header == BENCH_HEADER
    sizes = {row[2] for row in body if row[0].startswith("shaec")}
    assert sizes == {"112x80", "160x120", "320x240"}
    check_bench_rows(body)
    assert "3 GB" in text and "os.wait4" in text


def test_bench_speed_rejects_bad_size() -> None:
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_speed.py"), "--large", "6000by4000"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "WxH" in done.stderr


# --------------------------------------------------------------------------------------------
# klt_bound.py


def test_klt_bound_rises_with_channels_and_is_exact_with_all(data_dir: Path) -> None:
    header, body = parse_table(run_script("klt_bound.py", "--data", str(data_dir), "--keep", "3", "12", "48", "192"))
    assert header[0] == "channels kept"
    psnr = [positive_finite(row[2]) for row in body]
    assert psnr == sorted(psnr) and psnr[0] < psnr[2]
    assert psnr[-1] > 100  # every component kept: only float rounding is lost


@pytest.mark.slow  # a script run of several seconds; CI runs it with the slow tests
def test_klt_bound_measures_a_checkpoint(data_dir: Path) -> None:
    """On the committed checkpoint: the unquantized latent is never worse than the quantized one
    by more than noise, and quality rises with the level."""
    checkpoint = REPO / "checkpoints" / "shae-v8.pt"
    if not checkpoint.exists():
        pytest.skip("no training checkpoint committed")
    text = run_script("klt_bound.py", "--data", str(data_dir), "--keep", "48", "--checkpoint", str(checkpoint))
    header, body = parse_table(text.split("val images:")[1])
    assert header == ["quality", "PSNR quantized", "PSNR unquantized"]
    quantized = [positive_finite(row[1]) for row in body]
    unquantized = [positive_finite(row[2]) for row in body]
    assert len(body) == 10
    assert quantized[-1] > quantized[0] + 3
    assert all(u > q - 0.5 for q, u in zip(quantized, unquantized))


def test_bd_compare_halved_rates_give_minus_50_percent(tmp_path: Path) -> None:
    """Two bench results.csv files whose rates differ by exactly 2x at equal quality."""
    header = "codec,quality,image,width,height,bytes,bpp,psnr_rgb,ms_ssim_rgb,ms_ssim_rgb_db,encode_s,decode_s\n"
    points = [(0.2, 30.0, 0.95), (0.4, 33.0, 0.97), (0.8, 36.0, 0.985), (1.6, 39.0, 0.992)]
    for name, scale in (("anchor.csv", 1.0), ("test.csv", 0.5)):
        rows = [f"shaec,{q},a.png,8,8,1,{bpp * scale},{psnr},{ssim},0,0,0\n"
                for q, (bpp, psnr, ssim) in enumerate(points, start=1)]
        (tmp_path / name).write_text(header + "".join(rows))
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "bd_compare.py"),
                             "--anchor", str(tmp_path / "anchor.csv"), "--test", str(tmp_path / "test.csv"),
                             "--within", "31", "40"],
                            capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == "PSNR: -50.00 % over 31.00..39.00 dB"
    assert lines[1].startswith("MS-SSIM dB: -50.00 % over ")
    # at half the rate each test level matches the anchor's next level: 3 dB ahead (one below its range)
    per_level = subprocess.run([sys.executable, str(REPO / "scripts" / "bd_compare.py"),
                                "--anchor", str(tmp_path / "anchor.csv"), "--test", str(tmp_path / "test.csv"),
                                "--metric", "PSNR", "--per-level"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
    assert per_level[1:] == ["level 1: 0.100 bpp, 30.00 dB, PSNR ahead of the anchor: outside its rates",
                             "level 2: 0.200 bpp, 33.00 dB, PSNR ahead of the anchor: +3.00 dB",
                             "level 3: 0.400 bpp, 36.00 dB, PSNR ahead of the anchor: +3.00 dB",
                             "level 4: 0.800 bpp, 39.00 dB, PSNR ahead of the anchor: +3.00 dB"]


# --------------------------------------------------------------------------------------------
# eval_checkpoint.py


def test_eval_checkpoint_takes_the_first_photos_and_chosen_levels(data_dir: Path, tiny_config,
                                                                   tmp_path: Path) -> None:
    """--images 1 --levels 2: what training's periodic validation measures, for any checkpoint."""
    import torch

    from imgcodec.train.shae_v8 import ShaeV8

    torch.manual_seed(0)
    checkpoint = tmp_path / "model.pt"
    torch.save({"model": ShaeV8(tiny_config).state_dict(), "model_config": tiny_config.to_dict(), "step": 3},
               checkpoint)
    text = run_script("eval_checkpoint.py", str(checkpoint), "--data", str(data_dir), "--images", "1",
                      "--levels", "2", "--out", str(tmp_path / "levels.csv"), "--per-image", str(tmp_path / "images.csv"),
                      "--ms-ssim")
    assert "(step 3), 1 photos" in text and "MS-SSIM" in text
    with (tmp_path / "levels.csv").open() as handle:
        levels = list(csv.DictReader(handle))
    assert [int(r["quality"]) for r in levels] == [2]
    # one photo: its own row is the level's mean, named by its file (the first by name)
    with (tmp_path / "images.csv").open() as handle:
        images = list(csv.DictReader(handle))
    first = sorted(p.name for p in (data_dir / "val").iterdir())[0]
    assert [(int(r["quality"]), r["image"]) for r in images] == [(2, first)]
    assert float(images[0]["bpp"]) == pytest.approx(float(levels[0]["bpp"]), abs=1e-6)
    assert float(images[0]["psnr"]) == pytest.approx(float(levels[0]["psnr"]), abs=1e-4)
    assert float(images[0]["ms_ssim"]) == pytest.approx(float(levels[0]["ms_ssim"]), abs=1e-6)
    assert 0 < float(levels[0]["ms_ssim"]) < 1


@pytest.mark.slow  # a script run of several seconds; CI runs it with the slow tests
def test_eval_checkpoint_bd_rate_against_a_curve_at_twice_the_rate(data_dir: Path, tiny_config,
                                                                     tmp_path: Path) -> None:
    """A checkpoint's per-level table, then BD-rates against an anchor results.csv holding the
    same PSNRs at twice the file bpp: exactly -50 %."""
    import torch

    from imgcodec.bitstream import HEADER_SIZE, SEGMENT_HEADER_SIZE, TRAILER_SIZE
    from imgcodec.train.shae_v8 import ShaeV8

    torch.manual_seed(0)
    model = ShaeV8(tiny_config)
    checkpoint = tmp_path / "model.pt"
    torch.save({"model": model.state_dict(), "model_config": tiny_config.to_dict(), "step": 7}, checkpoint)
    header = "codec,quality,image,width,height,bytes,bpp,psnr_rgb,ms_ssim_rgb,ms_ssim_rgb_db,encode_s,decode_s\n"
    (tmp_path / "empty.csv").write_text(header + "webp,1,a.png,8,8,1,0.5,30,0.9,10,0,0\n")
    table = tmp_path / "levels.csv"
    text = run_script("eval_checkpoint.py", str(checkpoint), "--data", str(data_dir), "--anchors",
                      str(tmp_path / "empty.csv"), "--out", str(table), "--ms-ssim")
    assert "(step 7), 2 photos" in text and "BD-rate vs jpeg: not in" in text
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["quality"]) for r in rows] == [1, 2, 3]
    # File bpp is the payload's plus the container (header, segment header, CRC) per photo.
    pixels = [96 * 128, 80 * 112]
    container = np.mean([8 * (HEADER_SIZE + SEGMENT_HEADER_SIZE + TRAILER_SIZE) / n for n in pixels])
    for r in rows:
        assert float(r["bpp"]) > container and float(r["bpp_estimate"]) > 0
    anchor_rows = [f"jpeg,{r['quality']},a.png,8,8,1,{2 * float(r['bpp'])},{r['psnr']},{r['ms_ssim']},0,0,0\n"
                   for r in rows]
    (tmp_path / "anchor.csv").write_text(header + "".join(anchor_rows))
    text = run_script("eval_checkpoint.py", str(checkpoint), "--data", str(data_dir), "--anchors",
                      str(tmp_path / "anchor.csv"), "--anchor-codecs", "jpeg", "--ms-ssim")
    assert re.search(r"BD-rate vs jpeg \(.*\), PSNR: -50\.00 % over", text), text
    assert "BD-rate vs jpeg, MS-SSIM (dB): -50.00 %" in text, text
    # the anchor's lowest rate is twice level 1's: no anchor PSNR there to compare with
    assert "PSNR ahead of jpeg at each level's rate: q1 outside its rates, q2 " in text, text


# --------------------------------------------------------------------------------------------
# tune_rounding.py


def test_tune_rounding_writes_per_level_taus(data_dir: Path, tmp_path: Path) -> None:
    """On a copy of installed shae-v8: one tau per level from the grid (or 0), stored in
    model.json with what was measured, the model id unchanged, the codec then uses them, and the
    manifest's validation table is measured again with them."""
    import os
    import shutil

    from imgcodec.zoo import list_models

    info = find_model("shae-v8")
    zoo = tmp_path / "zoo"
    shutil.copytree(info.folder, zoo / info.name)
    manifest = {"models": {info.name: info.manifest_entry}, "default": info.name}
    (zoo / "manifest.json").write_text(json.dumps(manifest))
    env = {**os.environ, "SHAEC_MODELS_DIR": str(zoo), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPTS / "tune_rounding.py"), "--data", str(data_dir), "--crops", "2",
                           "--size", "64", "--taus", "0.001", "0.02", "--threads", "1", "--write"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    assert "2 training crops of up to 64x64" in done.stdout
    meta = json.loads((zoo / info.name / "model.json").read_text())
    entry = meta["rd_rounding"]
    levels = len(info.qualities)
    assert len(entry["tau"]) == len(entry["rate_change_percent_on_training_crops"]) == levels
    assert set(entry["tau"]) <= {0.0, 0.001, 0.02} and entry["taus_tried"] == [0.0, 0.001, 0.02]
    for tau, change in zip(entry["tau"], entry["rate_change_percent_on_training_crops"]):
        assert (tau == 0) == (change == 0) and change <= 0
    assert meta["model_id"] == info.model_id
    (copy,) = list_models(zoo)
    assert copy.model_id == info.model_id and copy.meta["rd_rounding"]["tau"] == entry["tau"]
    # the manifest's validation table (`shaec models`) was measured again, on --data's val photos
    validation = copy.manifest_entry["validation"]
    assert validation["images"] == 2 and [row["quality"] for row in validation["levels"]] == list(info.qualities)
    assert validation["rounding"] == ("rd" if any(entry["tau"]) else "nearest")
    # The installed model itself was not touched.
    assert json.loads((info.folder / "model.json").read_text()).get("rd_rounding") == info.meta.get("rd_rounding")


def test_tune_rounding_rejects_non_positive_taus() -> None:
    done = subprocess.run([sys.executable, str(SCRIPTS / "tune_rounding.py"), "--taus", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--taus must be positive" in done.stderr


# --------------------------------------------------------------------------------------------
# fetch_data.py: the detail set


def test_detail_set_takes_the_most_detailed_native_crops_and_never_val(monkeypatch) -> None:
    import importlib.util
    from types import SimpleNamespace

    from PIL import Image

    spec = importlib.util.spec_from_file_location("fetch_data", REPO / "scripts" / "fetch_data.py")
    fetch = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fetch_data", fetch)  # its dataclasses look themselves up there
    # The script raises Pillow's pixel limit for its trusted packages; other tests need the default.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    spec.loader.exec_module(fetch)
    monkeypatch.setattr(fetch, "DETAIL_COUNT", 3)
    monkeypatch.setattr(fetch, "DETAIL_PER_PACKAGE", 2)
    rng = np.random.default_rng(0)

    def photo(name: str, package: str, noise: float, factor: int = 2, title: str = "t") -> SimpleNamespace:
        pixels = np.clip(128 + rng.normal(0, noise, (512, 768, 3)), 0, 255).astype(np.uint8)
        return SimpleNamespace(name=name, title=title, factor=factor, native=Image.fromarray(pixels),
                               cand=SimpleNamespace(source=SimpleNamespace(package=package)))

    val_package, val_title = sorted(fetch.VAL_PICTURES)[0]
    photos = [photo("a1", "a", 40), photo("a2", "a", 35), photo("a3", "a", 30), photo("b1", "b", 5),
              photo("c1", "c", 1), photo("native", "c", 50, factor=1),
              photo("val", val_package, 60, title=val_title)]
    # a1 and a2 (the package's cap), then b1; a3 only after the cap; never a native or a val photo.
    assert fetch.detail_names(photos) == {"a1", "a2", "b1"}
    assert fetch.split_of(photos[0], {"a1"}) == "detail" and fetch.split_of(photos[-1], {"val"}) == "val"


# --------------------------------------------------------------------------------------------
# bench_rate_control.py


def test_bench_rate_control_never_exceeds_the_target(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rc.md"
    text = run_script("bench_rate_control.py", str(data_dir / "val"), "--targets", "0.4", "1.2", "--out", str(out))
    header, body = parse_table(text)
    assert header[0] == "target bpp" and [row[0] for row in body] == ["0.4", "1.2"]
    for row in body:
        mean_size, worst_size = float(row[1]), float(row[2])
        assert 0 < worst_size <= mean_size <= 1.0
        assert float(row[4]) >= float(row[6])  # never worse than the levels alone
    assert out.read_text().startswith("Command: `python scripts/bench_rate_control.py")


def test_ssim_lambdas_are_the_curves_slopes(tmp_path: Path) -> None:
    """Three levels on a curve bpp = -ln(D): slopes 1/D between them; each level gets the geometric
    mean of the slopes beside it, and a curve that does not fall is refused."""
    results = tmp_path / "results.csv"
    header = ["codec", "quality", "image", "width", "height", "bytes", "bpp", "psnr_rgb", "ms_ssim_rgb",
              "ms_ssim_rgb_db", "encode_s", "decode_s"]

    def bench_row(codec: str, quality: int, bpp: float, ms_ssim: float) -> list[object]:
        return [codec, quality, "a.png", 8, 8, 1, bpp, 30.0, ms_ssim, 10.0, 0.1, 0.1]  # a shaec bench row

    with open(results, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for q, d in ((1, 0.1), (2, 0.05), (3, 0.025)):
            writer.writerow(bench_row("shaec", q, math.log(1 / d), 1 - d))
        writer.writerow(bench_row("jpeg", 50, 9.0, 0.5))
    out = subprocess.run([sys.executable, str(SCRIPTS / "ssim_lambdas.py"), str(results)],
                         check=True, capture_output=True, text=True).stdout
    lambdas = json.loads(out)
    slopes = [math.log(2) / 0.05, math.log(2) / 0.025]
    assert lambdas == pytest.approx([slopes[0], math.sqrt(slopes[0] * slopes[1]), slopes[1]], rel=5e-3)  # 3 significant digits
    with open(results, "a", newline="") as fh:
        csv.writer(fh).writerow(bench_row("shaec", 4, 0.1, 0.5))  # a level that loses rate
    failed = subprocess.run([sys.executable, str(SCRIPTS / "ssim_lambdas.py"), str(results)],
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "must gain rate" in failed.stderr


# --------------------------------------------------------------------------------------------
# crop_activity.py

def test_crop_activity_threshold_rows_have_more_texture(data_dir: Path) -> None:
    out = run_script("crop_activity.py", "--data", str(data_dir), "--splits", "train", "val", "--crop", "64",
                     "--count", "40", "--thresholds", "0", "6")
    rows = {line[:28].strip(): [float(v.rstrip("%")) for v in line[28:].split()] for line in out.splitlines()[1:]}
    assert set(rows) == {"train", "val", "train, flat-crop-activity 6"}
    assert all(len(cells) == 6 and cells == sorted(cells[:5]) + cells[5:] for cells in rows.values())
    assert rows["train, flat-crop-activity 6"][2] >= rows["train"][2]  # a higher median activity


# --------------------------------------------------------------------------------------------
# profile_codec.py

def test_profile_codec_splits_encode_and_decode_into_stages(tmp_path: Path) -> None:
    photo = tmp_path / "crop.png"
    Image.open(REPO / "samples" / "coffee.png").crop((0, 0, 128, 96)).save(photo)
    out = run_script("profile_codec.py", "--image", str(photo), "--quality", "2")
    first = out.split("first encode and decode in this process")[1].splitlines()[0]
    assert all(float(part.strip(" s")) > 0 for part in first.split(": ")[1].split(", "))
    for operation in ("encode", "decode"):
        section = out.split(f"\n{operation}: ")[1].split("\n\n")[0].splitlines()
        assert float(section[0].split()[0]) > 0
        stages = {line[:38].strip(): float(line[38:].split()[0]) for line in section[1:]}
        assert set(stages) == {"transforms (ONNX Runtime)", "entropy model's integer networks", "range coder",
                               "other", "total (under cProfile)"}
        assert stages["transforms (ONNX Runtime)"] > 0 and stages["total (under cProfile)"] > 0


def test_average_weights_means_the_runs_and_counts_their_work_once(tmp_path):
    """A model soup: the mean of each weight, and the shared start's steps and hours counted once."""
    import torch

    from imgcodec.train.training import save_weights

    def weights(path, value, steps, cpu_hours, gpu_hours=None, config=None):
        layer = torch.nn.Linear(2, 2)
        torch.nn.init.constant_(layer.weight, value)
        torch.nn.init.constant_(layer.bias, value)
        record = {"architecture": "shae-v9", "model_config": config or {"channels": 2}, "train_config": {},
                  "total_steps": steps, "total_cpu_hours": cpu_hours,
                  **({"total_gpu_hours": gpu_hours} if gpu_hours is not None else {})}
        save_weights(path, layer, record, torch.float32)
        return str(path)

    start = weights(tmp_path / "start.pt", 0.0, 100, 10.0)
    cpu = weights(tmp_path / "cpu.pt", 1.0, 130, 11.0)
    gpu = weights(tmp_path / "gpu.pt", 2.0, 110, 10.0, 0.5)
    import importlib.util

    spec = importlib.util.spec_from_file_location("average_weights", SCRIPTS / "average_weights.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "soup.pt"
    assert script.main([cpu, gpu, "--shared", start, "--out", str(out)]) == 0
    soup = torch.load(out, weights_only=False)
    assert torch.equal(soup["model"]["weight"], torch.full((2, 2), 1.5))
    assert (soup["total_steps"], soup["total_cpu_hours"], soup["total_gpu_hours"]) == (140, 11.0, 0.5)
    other = weights(tmp_path / "other.pt", 1.0, 120, 10.0, config={"channels": 3})
    with pytest.raises(SystemExit, match="another architecture or configuration"):
        script.main([cpu, other, "--shared", start, "--out", str(tmp_path / "bad.pt")])


# ---------------------------------------------------------------------------------------------
# bd_per_image.py


def test_bd_per_image_compares_photo_by_photo(tmp_path: Path) -> None:
    """A bench results.csv (its codec named) against an eval_checkpoint.py --per-image table: one
    photo at the same PSNRs for half the bits (-50 %), one for twice the bits (+100 %), and a
    photo only one table holds is left out."""
    bench = tmp_path / "results.csv"
    lines = ["codec,quality,image,width,height,bytes,bpp,psnr_rgb,ms_ssim_rgb,ms_ssim_rgb_db,encode_s,decode_s"]
    points = [(0.2, 28.0), (0.4, 31.0), (0.8, 34.0), (1.6, 37.0)]
    for image in ("a.png", "b.png", "only-here.png"):
        lines += [f"shaec,{q},{image},8,8,1,{bpp},{psnr},0.9,10,0,0" for q, (bpp, psnr) in enumerate(points, 1)]
    lines += [f"webp,{q},a.png,8,8,1,{bpp / 3},{psnr},0.9,10,0,0" for q, (bpp, psnr) in enumerate(points, 1)]
    bench.write_text("\n".join(lines) + "\n")
    table = tmp_path / "images.csv"
    rows = ["quality,image,bpp,bpp_estimate,psnr"]
    rows += [f"{q},a.png,{bpp / 2},0,{psnr}" for q, (bpp, psnr) in enumerate(points, 1)]
    rows += [f"{q},b.png,{bpp * 2},0,{psnr}" for q, (bpp, psnr) in enumerate(points, 1)]
    table.write_text("\n".join(rows) + "\n")
    text = run_script("bd_per_image.py", "--anchor", f"{bench}:shaec", "--test", str(table))
    changes = dict((line.split()[-1], float(line.split()[0])) for line in text.splitlines() if line.endswith(".png"))
    assert changes == pytest.approx({"a.png": -50.0, "b.png": 100.0}, abs=0.01)
    assert "1 lose, 1 win or tie" in text
    done = subprocess.run([sys.executable, str(SCRIPTS / "bd_per_image.py"), "--anchor", str(bench), "--test",
                           str(table)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "name the codec" in done.stderr


def _copy_with_plain_graph(tmp_path: Path, name: str, stem: str) -> Path:
    """A models folder holding a copy of an installed model whose graph `stem` is put back as a
    plain .onnx, decoded from its .shaw (what the model shipped before it was recompressed)."""
    import hashlib

    from imgcodec.weights.model_files import decompress_model, read_model

    info = find_model(name)
    zoo = tmp_path / "zoo"
    shutil.copytree(info.folder, zoo / name)
    folder = zoo / name
    shaw = folder / f"{stem}.shaw"
    (folder / f"{stem}.onnx").write_bytes(decompress_model(*read_model(shaw.read_bytes()), "onnx"))
    shaw.unlink()
    meta = json.loads((folder / "model.json").read_text())
    del meta["files"][shaw.name]
    meta["files"][f"{stem}.onnx"] = hashlib.sha256((folder / f"{stem}.onnx").read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))
    entry = {**info.manifest_entry, "files": meta["files"]}
    (zoo / "manifest.json").write_text(json.dumps({"models": {name: entry}, "default": name}))
    return zoo


def _recompress(zoo: Path, *args: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "SHAEC_MODELS_DIR": str(zoo), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPTS / "recompress_graph.py"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize("name, options, lossless", [("shae-v9", [], True), ("shae-v8", ["--bits", "14"], False)])
def test_recompress_graph_keeps_the_model_id_and_checks_the_samples(tmp_path: Path, name: str,
                                                                      options: list[str], lossless: bool) -> None:
    """The script writes decoder.shaw, lists it in model.json and the manifest, keeps the model
    id, and the copy then decodes the model's samples as the installed model does (identically
    where the weights are bf16)."""
    from imgcodec import codec as codec_module
    from imgcodec.zoo import list_models

    info = find_model(name)
    zoo = _copy_with_plain_graph(tmp_path, name, "decoder")
    folder = zoo / name
    done = _recompress(zoo, name, *options)
    assert done.returncode == 0, done.stderr
    assert ("lossless" in done.stderr) == lossless
    assert (folder / "decoder.shaw").exists() and not (folder / "decoder.onnx").exists()
    written = json.loads((folder / "model.json").read_text())
    assert written["model_id"] == info.model_id and "decoder.shaw" in written["files"]
    assert json.loads((zoo / "manifest.json").read_text())["models"][name]["files"] == written["files"]
    (copy,) = list_models(zoo)
    sample = (REPO / "samples" / f"{name}-q5.shae").read_bytes()
    shae = codec_module.parse(sample)
    ours = codec_module.codec_of(copy).decode(shae, max_pixels=0)
    installed = codec_module.codec_of(info).decode(shae, max_pixels=0)
    difference = np.abs(ours.astype(np.int16) - installed)
    if lossless:
        assert np.array_equal(ours, installed)
    else:
        assert difference.max() <= 1 and np.mean(difference > 0) <= 0.001


def test_recompress_encoder_checks_psnr_and_rate_on_photos(tmp_path: Path, data_dir: Path) -> None:
    """An encoder is checked by encoding photos with both: within the bar it is written and
    recorded with what was measured; a bar no encoder can meet leaves the model as it was."""
    zoo = _copy_with_plain_graph(tmp_path, "shae-v8", "encoder")
    folder = zoo / "shae-v8"
    refused = _recompress(zoo, "shae-v8", "--graph", "encoder", "--bits", "2", "--data", str(data_dir / "val"),
                          "--images", "1", "--max-db", "0", "--max-rate", "0")
    assert refused.returncode != 0 and "nothing changed" in refused.stderr
    assert (folder / "encoder.onnx").exists() and not (folder / "encoder.shaw").exists()
    done = _recompress(zoo, "shae-v8", "--graph", "encoder", "--bits", "8", "--data", str(data_dir / "val"),
                       "--images", "1")
    assert done.returncode == 0, done.stderr
    assert (folder / "encoder.shaw").exists() and not (folder / "encoder.onnx").exists()
    record = json.loads((folder / "model.json").read_text())["encoder_weights"]
    assert record["photos"] == 1 and record["worst_psnr_change_db"] >= -0.05
    assert record["worst_rate_change_percent"] <= 0.5


def test_recompress_graph_refuses_a_model_without_the_onnx_graph() -> None:
    done = subprocess.run([sys.executable, str(SCRIPTS / "recompress_graph.py"), "shae-v11"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "no decoder.onnx" in done.stderr
    done = subprocess.run([sys.executable, str(SCRIPTS / "recompress_graph.py"), "shae-v11", "--graph", "encoder"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "no encoder.onnx" in done.stderr


def test_first_stage_clipping_reports_each_level(data_dir: Path) -> None:
    out = run_script("first_stage_clipping.py", str(REPO / "checkpoints" / "shae-v11-ssim.pt"),
                     "--image", str(data_dir / "val" / "img0.png"), "--crop", "64", "--levels", "1", "10",
                     "--threads", "1")
    rows = [line.split(" | ") for line in out.splitlines()[1:]]
    assert [row[1] for row in rows] == ["1", "10"]
    for row in rows:
        beyond, top = float(row[2]), float(row[3])
        assert 0 <= beyond <= 100 and top >= 0
        unclipped, clipped, nearest = map(float, row[4:])
        assert beyond > 0 or clipped == unclipped  # nothing beyond the centers: clipping changes nothing
        assert min(unclipped, clipped, nearest) > 10


def test_repack_tables_rewrites_models_in_the_earlier_layout_exactly(tmp_path: Path, earlier_tables) -> None:
    """Two installed models written back in the layouts of 0.11.1 (byte planes, y's tables as
    counts; prior counts as they are), then repacked by the script: smaller files, the same
    tables, checksums updated, the files byte for byte as shipped."""
    import hashlib

    from imgcodec.hyperprior import HyperpriorTables
    from imgcodec.zoo import prior_counts

    manifest = json.loads((find_model("shae-v11").folder.parent / "manifest.json").read_text())
    models = tmp_path / "models"
    kept = {}
    for name, tables in (("shae-v11", "hyperprior.npz"), ("shae-v8", "prior.npz")):
        info = find_model(name)
        shutil.copytree(info.folder, models / name)
        if tables == "hyperprior.npz":
            earlier_tables(HyperpriorTables.load(info.folder / tables), models / name / tables, "0.11.1")
        else:
            with np.load(info.folder / tables) as data:
                arrays = {k: data[k] for k in data.files}
            np.savez_compressed(models / name / tables, **{k: v for k, v in arrays.items()
                                                           if not k.startswith("count_steps")},
                                counts=prior_counts(arrays))
        meta = json.loads((models / name / "model.json").read_text())
        meta["files"][tables] = hashlib.sha256((models / name / tables).read_bytes()).hexdigest()
        (models / name / "model.json").write_text(json.dumps(meta))
        kept[name] = (tables, (models / name / tables).stat().st_size)
    (models / "manifest.json").write_text(json.dumps({
        "default": "shae-v11", "models": {n: {**manifest["models"][n], "files": json.loads(
            (models / n / "model.json").read_text())["files"]} for n in kept}}))
    env = {**os.environ, "SHAEC_MODELS_DIR": str(models)}
    done = subprocess.run([sys.executable, str(SCRIPTS / "repack_tables.py"), "shae-v11", "shae-v8"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "shae-v11: hyperprior.npz" in done.stdout and "shae-v8: prior.npz" in done.stdout
    written = json.loads((models / "manifest.json").read_text())
    for name, (tables, earlier_size) in kept.items():
        path = models / name / tables
        assert path.stat().st_size < earlier_size
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert json.loads((models / name / "model.json").read_text())["files"][tables] == digest
        assert written["models"][name]["files"][tables] == digest
        assert path.read_bytes() == (find_model(name).folder / tables).read_bytes()  # as shipped
    shipped = HyperpriorTables.load(find_model("shae-v11").folder / "hyperprior.npz")
    assert np.array_equal(HyperpriorTables.load(models / "shae-v11" / "hyperprior.npz").y_counts, shipped.y_counts)


def test_bench_weights_speed_builds_resnet50s_tensors() -> None:
    """The speed benchmark's model has ResNet-50's 25,557,032 parameters (torchvision's count)
    plus its batch norms' running statistics, and round-trips through safetensors."""
    import importlib.util

    from imgcodec.weights.safetensors_files import write_safetensors

    spec = importlib.util.spec_from_file_location("bench_weights_speed", SCRIPTS / "bench_weights_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tensors = module.resnet50_tensors()
    statistics = [n for n in tensors if n.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert sum(a.size for n, (a, _) in tensors.items() if n not in statistics) == 25_557_032
    assert len(tensors) == 320 and tensors["layer4.2.conv2.weight"][0].shape == (512, 512, 3, 3)
    assert len(write_safetensors(tensors)) > 4 * 25_557_032
