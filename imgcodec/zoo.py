"""The model zoo: which trained models are installed, and loading their frozen parts.

Models are package data in ``imgcodec/models/`` (or in the folder named by the environment
variable SHAEC_MODELS_DIR), so a wheel or a plain ``pip install`` carries them. ``manifest.json``
lists them; each model folder holds the files written by ``imgcodec.train.export``. Loading checks
every file's sha256 against model.json, so a damaged install fails loudly instead of writing
undecodable files. A retired model that is marked ``decode_only`` ships its decoder and tables
but no encoder: files written by an earlier release keep decoding.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .context_prior import PriorTables
from .errors import ModelNotFoundError
from .int_arrays import compact_16bit, read_16bit

MODELS_ENV = "SHAEC_MODELS_DIR"
PRIOR_FILE = "prior.npz"


def models_dir() -> Path:
    """SHAEC_MODELS_DIR if set, else the models shipped inside the package."""
    env = os.environ.get(MODELS_ENV)
    return Path(env) if env else Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class ModelInfo:
    """One installed model, as described by the manifest and its model.json."""

    name: str
    folder: Path
    model_id: str  # 16 hex digits
    meta: dict[str, Any]
    manifest_entry: dict[str, Any]

    @property
    def architecture(self) -> str:
        """The model class it was exported from (model.json; models from before the field are
        of shae-v8's layout)."""
        return str(self.meta.get("architecture", "shae-v8"))

    @property
    def num_levels(self) -> int:
        return len(self.meta["config"]["lambdas"])

    @property
    def default_quality(self) -> int:
        return int(self.manifest_entry.get("default_quality", (self.num_levels + 1) // 2))

    @property
    def tune(self) -> str:
        """The metric the model was trained for: "psnr" (MSE loss) unless the manifest says
        "ssim" (a fine-tune for MS-SSIM of the model named by "tuned_from")."""
        return str(self.manifest_entry.get("tune", "psnr"))

    @property
    def tuned_from(self) -> str | None:
        """The model this one is a fine-tune of (manifest "tuned_from"), None for a base model."""
        value = self.manifest_entry.get("tuned_from")
        return None if value is None else str(value)

    @property
    def decode_only(self) -> bool:
        """A retired model that ships only its decoder (no encoder.onnx)."""
        return bool(self.manifest_entry.get("decode_only", False))

    def check_encodes(self) -> None:
        """Raise ModelNotFoundError for a retired model: every codec refuses to encode with one
        in the same words."""
        if self.decode_only:
            raise ModelNotFoundError(
                f"model '{self.name}' is retired and ships only its decoder; encode with the default model")

    @property
    def qualities(self) -> list[int]:
        """User-facing quality numbers 1..N (1 = smallest files)."""
        return list(range(1, self.num_levels + 1))


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / "manifest.json"
    if not path.exists():
        raise ModelNotFoundError(f"no models installed: {path} is missing")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot read {path}: {exc}") from exc


def list_models(directory: Path | None = None) -> list[ModelInfo]:
    directory = directory or models_dir()
    manifest = _read_manifest(directory)
    infos = []
    for name, entry in manifest.get("models", {}).items():
        folder = directory / entry.get("folder", name)
        try:
            meta = json.loads((folder / "model.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"model '{name}' is damaged: cannot read model.json ({exc})") from exc
        infos.append(ModelInfo(name, folder, meta["model_id"], meta, entry))
    return infos


def folder_model(folder: Path) -> ModelInfo:
    """The model in `folder` (its model.json), outside any manifest: for measuring an export."""
    try:
        meta = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot read {folder / 'model.json'}: {exc}") from exc
    return ModelInfo(folder.name, folder, meta["model_id"], meta, {})


def default_model(directory: Path | None = None) -> ModelInfo:
    directory = directory or models_dir()
    manifest = _read_manifest(directory)
    models = list_models(directory)
    wanted = manifest.get("default")
    for info in models:
        if info.name == wanted:
            return info
    if models:
        return models[0]
    raise ModelNotFoundError(f"no models listed in {directory / 'manifest.json'}")


#: What `shaec encode --tune` accepts: the metric a model was trained for.
TUNES = ("psnr", "ssim")


def tuned_model(tune: str, directory: Path | None = None) -> ModelInfo:
    """The default model, or a fine-tune for another metric (manifest: "tune", "tuned_from"),
    as cwebp's -preset or avifenc's --tune pick a tuning rather than a file.

    The default model's own fine-tune comes first; until it has one, the newest installed
    fine-tune of an earlier default that still encodes (a new default ships before its tune is
    trained, and ``--tune ssim`` keeps working meanwhile)."""
    if tune not in TUNES:
        raise ModelNotFoundError(f"unknown tune {tune!r} (known: {', '.join(TUNES)})")
    base = default_model(directory)
    if base.tune == tune:
        return base
    tuned = [info for info in list_models(directory) if info.tune == tune and not info.decode_only]
    own = [info for info in tuned if info.tuned_from == base.name]
    if own or tuned:
        return (own or tuned)[-1]  # manifest order is export order: the last is the newest
    raise ModelNotFoundError(f"no model tuned for {tune} is installed for the default model {base.name}")


def find_model(name_or_id: str | None = None, directory: Path | None = None) -> ModelInfo:
    """A model by name or model id (hex); the default model for None."""
    if name_or_id is None:
        return default_model(directory)
    models = list_models(directory)
    for info in models:
        if name_or_id in (info.name, info.model_id):
            return info
    have = ", ".join(f"{m.name} ({m.model_id})" for m in models) or "none"
    raise ModelNotFoundError(f"model '{name_or_id}' is not installed (installed: {have})")


def find_model_by_id(model_id: bytes, directory: Path | None = None) -> ModelInfo:
    """The model a .shae file was made with; a clear error naming it if it is missing.

    The manifest's "retired" section lists models that no longer ship (to keep ``models/``
    small) with the last commit that has them, so that such a file's error says where to get
    the weights."""
    wanted = model_id.hex()
    models = list_models(directory)
    for info in models:
        if info.model_id == wanted:
            return info
    for name, entry in _read_manifest(directory or models_dir()).get("retired", {}).items():
        if entry.get("model_id") == wanted:
            raise ModelNotFoundError(
                f"this file was made with model {name} ({wanted}), which this version of shaec no longer "
                f"ships; decode it with shaec at commit {entry.get('last_commit', '?')}, which has models/{name}")
    have = ", ".join(f"{m.name} ({m.model_id})" for m in models) or "none"
    raise ModelNotFoundError(
        f"this file needs model weights {wanted}, which are not installed (installed: {have}); "
        "install the shaec release that wrote it")


def rd_tau_of(info: ModelInfo, num_levels: int) -> np.ndarray:
    """Per-level tau of the encoder's rate-distortion rounding (imgcodec.rounding), from
    model.json's "rd_rounding" (written by scripts/tune_rounding.py; encoder-side only, so not
    part of the model id). Zeros, i.e. nearest rounding, for a model that has none."""
    if info.meta.get("rd_rounding") is None:
        return np.zeros(num_levels)
    return _rd_rounding_values(info, "tau", num_levels, positive=False)


def rd_channel_weights_of(info: ModelInfo, num_channels: int) -> np.ndarray:
    """Per latent channel, what a unit change of its decoder input costs the decoded image,
    relative to the others (imgcodec.codec_v9: the rounding weighs a change by it), from
    model.json's "rd_rounding" "channel_weights"; ones for a model that has none."""
    entry = info.meta.get("rd_rounding")
    if entry is None or (isinstance(entry, dict) and "channel_weights" not in entry):
        return np.ones(num_channels)
    return _rd_rounding_values(info, "channel_weights", num_channels, positive=True)


def _rd_rounding_values(info: ModelInfo, key: str, length: int, positive: bool) -> np.ndarray:
    """model.json's rd_rounding[key]: `length` finite values, each > 0 if `positive`, else >= 0;
    anything else is a ModelNotFoundError naming the model."""
    try:
        values = np.asarray(info.meta["rd_rounding"][key], dtype=np.float64)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelNotFoundError(f"model '{info.name}': model.json has an unreadable rd_rounding ({exc})") from None
    if values.shape != (length,) or not np.all(np.isfinite(values)) or np.any(values <= 0 if positive else values < 0):
        raise ModelNotFoundError(f"model '{info.name}': rd_rounding.{key} must be {length} finite values "
                                 + ("> 0" if positive else ">= 0"))
    return values


#: Files only an encoder needs; a decode_only model ships without them.
ENCODER_FILES = ("encoder.onnx", "hyper_encoder.onnx", "detail_encoder.onnx",
                 "encoder.shaw", "hyper_encoder.shaw", "detail_encoder.shaw")


def graph_path(info: ModelInfo, stem: str) -> Path:
    """The file of the model's graph `stem` ("encoder", "decoder", ...): stem.shaw when the model
    lists one (the graph with its weights compressed by `shaec weights`, docs/weights.md), else
    stem.onnx."""
    compressed = f"{stem}.shaw"
    return info.folder / (compressed if compressed in info.meta.get("files", {}) else f"{stem}.onnx")


def verify_files(info: ModelInfo, names: Iterable[str]) -> None:
    """Check each named file of the model against the sha256 in its model.json (encoder files
    skipped for a decode_only model): a damaged install fails here, not in a half-written file."""
    for name in names:
        if name in ENCODER_FILES and info.decode_only:
            continue
        try:
            digest = hashlib.sha256((info.folder / name).read_bytes()).hexdigest()
        except OSError as exc:
            raise ModelNotFoundError(f"model '{info.name}' is missing {name}") from exc
        if digest != info.meta["files"].get(name):
            raise ModelNotFoundError(f"model '{info.name}': {name} is damaged (sha256 mismatch)")


def prior_counts(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """A shae-v8-layout prior.npz's counts (levels,channels,contexts,centers uint16), as
    compact_prior_counts stores them, or as earlier versions did ("counts")."""
    if "counts" in arrays:
        return arrays["counts"]
    return np.cumsum(read_16bit(arrays, "count_steps", np.uint16), axis=0, dtype=np.uint16)


def compact_prior_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """The prior.npz arrays that store counts (levels,... uint16): their differences along the
    level axis ("count_steps", modulo 2^16, imgcodec.int_arrays.compact_16bit), which deflate
    24 % smaller than the counts themselves; prior_counts reads them back exactly."""
    steps = np.diff(np.asarray(counts, dtype=np.uint16), axis=0, prepend=np.uint16(0))
    return compact_16bit("count_steps", steps)


class LoadedModel:
    """The parts of a model that coding needs: frozen tables, centers, gains, ONNX file paths."""

    def __init__(self, info: ModelInfo) -> None:
        self.info = info
        verify_files(info, [graph_path(info, "encoder").name, graph_path(info, "decoder").name, PRIOR_FILE])
        with np.load(info.folder / PRIOR_FILE) as npz:
            clip = int(npz["context_clip"]) if "context_clip" in npz.files else -1  # -1: none
            self.prior = PriorTables(prior_counts(npz), None if clip < 0 else clip)
            self.centers = npz["centers"].astype(np.float32)  # L, sorted ascending
            self.gains = npz["gains"].astype(np.float32)  # levels,C
            self.inverse_gains = npz["inverse_gains"].astype(np.float32)  # levels,C
        self.prior.validate()
        self.rd_tau = rd_tau_of(info, self.prior.num_levels)
        #: Decision thresholds between neighbouring (sorted) centers for nearest-center search.
        self.thresholds = ((self.centers[1:] + self.centers[:-1]) / 2).astype(np.float32)

    @property
    def encoder_path(self) -> Path:
        self.info.check_encodes()
        return graph_path(self.info, "encoder")

    @property
    def decoder_path(self) -> Path:
        return graph_path(self.info, "decoder")

    @property
    def model_id_bytes(self) -> bytes:
        return bytes.fromhex(self.info.model_id)

    @property
    def latent_channels(self) -> int:
        return self.prior.num_channels
