"""Turn a trained PyTorch model into the files that ship in ``models/`` and that the CLI runs.

A shipped model is a folder with:
    encoder.onnx   analysis transform, (image 1,3,H,W in [0,1], level int64 of shape 1) -> latent 1,C,H/8,W/8
    decoder.onnx   synthesis transform, (latent 1,C,h,w, level) -> image 1,3,8h,8w
    prior.npz      the frozen integer context tables, sorted centers, per-level gains
    model.json     ModelConfig, file hashes and the model id written into every .shae file

The model id is the first 8 bytes of the sha256 over the three weight files, so a file names
exactly the weights it needs.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..weights.codec import WeightCodecConfig, decompress_record, lossless_record, tensor_record
from ..weights.container import CODEC_EXACT16, CODEC_EXACT32, CODEC_FINE, CODEC_FLOAT16, CODEC_UNIFORM, Record
from ..weights.model_files import compress_model, decode_tensors, read_model
from ..zoo import compact_prior_counts
from .shae_v8 import ShaeV8
from .shae_v9 import ShaeV9
from .subpixel import faster_layout, rewrite_transposed_convolutions

ONNX_OPSET = 17
#: shae-v8's files; its model id hashes all three.
WEIGHT_FILES = ("encoder.onnx", "decoder.onnx", "prior.npz")


class _Transform(torch.nn.Module):
    """A transform as ONNX sees it: (tensor, level int64 of shape 1)."""

    def __init__(self, transform: torch.nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return self.transform(x, level)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_id_of(folder: Path) -> str:
    """16 hex digits identifying the weights (what .shae files record)."""
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        digest.update(bytes.fromhex(file_sha256(folder / name)))
    return digest.hexdigest()[:16]


def export_model(model: ShaeV8, folder: Path, extra: dict[str, Any] | None = None) -> str:
    """Write the shipped files for `model` into folder; returns the model id."""
    model = model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    example = torch.rand(1, 3, 64, 96)
    latent = torch.rand(1, cfg.latent_channels, 8, 12)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter suffices here
        level = (torch.zeros(1, dtype=torch.int64),)  # the transforms take the level (0-based)
        extra_inputs = ["level"]
        torch.onnx.export(_Transform(model.analysis), (example, *level), str(folder / "encoder.onnx"),
                          input_names=["image", *extra_inputs], output_names=["latent"], opset_version=ONNX_OPSET,
                          dynamic_axes={"image": {2: "height", 3: "width"},
                                        "latent": {2: "lh", 3: "lw"}}, dynamo=False)
        torch.onnx.export(_Transform(model.synthesis), (latent, *level), str(folder / "decoder.onnx"),
                          input_names=["latent", *extra_inputs], output_names=["image"], opset_version=ONNX_OPSET,
                          dynamic_axes={"latent": {2: "lh", 3: "lw"},
                                        "image": {2: "height", 3: "width"}}, dynamo=False)
        prior = model.prior.tabulate(model.sorted_centers())
        order = model.quantizer.centers.argsort()
        np.savez_compressed(
            folder / "prior.npz",
            **compact_prior_counts(prior.counts),
            context_clip=np.int64(prior.context_clip),
            centers=model.quantizer.centers[order].numpy().astype(np.float32),
            gains=model.log_gain.exp().numpy().astype(np.float32),  # levels,C
            inverse_gains=model.log_inv_gain.exp().numpy().astype(np.float32),  # levels,C
        )
    model_id = model_id_of(folder)
    meta = {
        "model_id": model_id,
        "format": "shaec-model-1",
        "config": cfg.to_dict(),
        "files": {name: file_sha256(folder / name) for name in WEIGHT_FILES},
        **(extra or {}),
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return model_id


#: shae-v9's tables. The model id covers what decoding needs (the decoder graph and
#: the tables); the encoders' hashes are checked on load like every file's.
SHAE_V9_TABLES = ("hyperprior.npz", "levels.npz")
#: Levels (0-based, as fractions of the top one) whose latents calibrate the weight compression.
CALIBRATION_LEVELS = (0.0, 0.5, 1.0)
CALIBRATION_CROPS = 4
CALIBRATION_CROP = 128
#: The largest alphabet a shipped graph's weights are context-coded with (compress_graph).
CONTEXT_ALPHABET = 256


def subpixel_synthesis(onnx_path: Path, fast: bool = True) -> int:
    """Rewrite the graph file's transposed convolutions as sub-pixel convolutions
    (imgcodec.train.subpixel.rewrite_transposed_convolutions: the same function, less memory and
    a faster first run in onnxruntime), with `fast` in the layout onnxruntime runs fastest
    (faster_layout: 25-34 % less time per synthesis); returns how many transposed convolutions
    there were. A graph whose weights are to be compressed is rewritten without `fast`, and
    fast_layout_shaw moves its stored weights afterwards: the phases' zero taps and the folded
    layer's zeros would otherwise count in the bits-per-weight target."""
    import onnx

    graph = onnx.load(str(onnx_path))
    replaced = rewrite_transposed_convolutions(graph)
    if (fast and faster_layout(graph)) or replaced:
        onnx.checker.check_model(graph)
        onnx.save(graph, str(onnx_path))
    return replaced


def moved_record(name: str, array: np.ndarray, source: Record | None) -> Record:
    """The .shaw record of a tensor whose values are copies of `source`'s (or zeros), coded as
    `source` was: quantized with its step, losslessly, in float16, or as it is. A tensor with
    no source, or a record that would not decode to exactly `array`, is a ValueError."""
    if source is None:
        raise ValueError(f"{name}: not a copy of a tensor the file holds")
    if source.codec in (CODEC_UNIFORM, CODEC_FINE):
        record = tensor_record(name, array, source.dtype, source.step,
                               WeightCodecConfig(deadzone=0.0, context_alphabet=CONTEXT_ALPHABET))
    elif source.codec in (CODEC_EXACT16, CODEC_EXACT32):  # losslessly: coded, or as it is where that is smaller
        record = lossless_record(name, array, source.dtype, WeightCodecConfig(lossless=True, context_alphabet=CONTEXT_ALPHABET))
    else:  # stored as it is, or in float16
        small_floats = "float16" if source.codec == CODEC_FLOAT16 else "exact"
        record = tensor_record(name, array, source.dtype, None, WeightCodecConfig(small_floats=small_floats))
    if not np.array_equal(decompress_record(record), array):
        raise ValueError(f"{name}: stored again, its values would change")
    return record


def fast_layout_shaw(data: bytes) -> tuple[bytes, int]:
    """A .shaw decoder (graph and weights) in the layout of imgcodec.train.subpixel.faster_layout,
    its weights moved exactly: every rewritten tensor is a copy of one the file holds (sliced,
    reordered, or padded with zeros), stored again with that tensor's own quantization step, or
    losslessly where it was lossless; the other records are kept as they are. Returns (the new
    bytes, how many tensors are new); (data, 0) where the graph has nothing to rewrite (in that
    layout already, or not in sub-pixel form)."""
    import onnx

    from ..weights.container import graph_record, pack
    from ..weights.onnx_weights import join, split

    graph, records = read_model(data)
    if graph is None:
        raise ValueError("this .shaw file carries no graph")
    by_name = {record.name: record for record in records}
    model = onnx.load_model_from_string(join(graph, decode_tensors(records)))
    sources = faster_layout(model)
    if not sources:
        return data, 0
    onnx.checker.check_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.onnx"
        onnx.save(model, str(path))
        new_graph, tensors = split(path)
    new_records = [by_name[name] if name in by_name else moved_record(name, array, by_name.get(sources.get(name, "")))
                   for name, array in tensors.items()]
    return pack(new_records + [graph_record(new_graph)]), sum(name not in by_name for name in tensors)


def graph_weights(onnx_path: Path, bits: float | None, calibration: dict[str, np.ndarray] | None) -> bytes:
    """The .shaw bytes of an ONNX graph as shaec ships its graphs: its weights compressed by
    `shaec weights`' data-free codec to `bits` per weight on average, allocated by the
    sensitivities measured on `calibration` (graph input name -> a batch of one) (docs/weights.md);
    bits None: losslessly (16-bit float weights entropy-coded exactly, others as they are).

    Without the codec's dead zone: rounding toward zero shrinks every weight of a layer by up to
    a fifth of a step, so a whole transform's output shrinks with it: a bias that the noise which
    measures the sensitivities cannot show. Plain rounding costs about the same bytes here.
    Column contexts only for alphabets up to CONTEXT_ALPHABET: at 7 bits per weight the first
    synthesis layer of shae-v9-ssim has about 4,000 centers, where contexts saved 2 % of its
    bytes and their decoding, symbol by symbol where runs are short, grows with the alphabet."""
    if bits is None:
        return compress_model(onnx_path, WeightCodecConfig(lossless=True, context_alphabet=CONTEXT_ALPHABET))
    config = WeightCodecConfig(target_bits_per_weight=bits, deadzone=0.0, context_alphabet=CONTEXT_ALPHABET)
    return compress_model(onnx_path, config, calibration)


def compress_graph(onnx_path: Path, bits: float, calibration: dict[str, np.ndarray]) -> Path:
    """Replace stem.onnx by stem.shaw (graph_weights); returns the new path."""
    compressed = onnx_path.with_suffix(".shaw")
    compressed.write_bytes(graph_weights(onnx_path, bits, calibration))
    onnx_path.unlink()
    return compressed


def calibration_crops(folder: Path, size: int = CALIBRATION_CROP, seed: int | None = None) -> list[np.ndarray]:
    """Crops (size x size x 3 uint8) of CALIBRATION_CROPS photos spread over the folder's sorted
    names, smaller photos skipped: centred, or at positions drawn from `seed`. Enough to rank
    tensors' sensitivities (imgcodec.weights.sensitivity), in seconds per graph."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    rng = None if seed is None else np.random.default_rng(seed)
    crops = []
    for path in paths[::max(1, len(paths) // CALIBRATION_CROPS)][:CALIBRATION_CROPS]:
        image = np.asarray(Image.open(path).convert("RGB"))
        if min(image.shape[:2]) < size:
            continue
        if rng is None:
            top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        else:
            top, left = int(rng.integers(0, image.shape[0] - size + 1)), int(rng.integers(0, image.shape[1] - size + 1))
        crops.append(image[top:top + size, left:left + size])
    if not crops:
        raise ValueError(f"no photo of at least {size}x{size} pixels among those sampled in {folder}")
    return crops


@torch.no_grad()
def shae_v9_calibration(model: ShaeV9, crops: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Inputs that calibrate each shae-v9 graph's weight compression, from photo crops (H,W,3
    uint8, sides multiples of 64, all the same size): the crops side by side for the encoder;
    their gained latents at CALIBRATION_LEVELS side by side for the hyper-encoder; the same at
    the nearest centers times the inverse gains for the decoder."""
    strip = torch.from_numpy(np.concatenate(crops, axis=1)).permute(2, 0, 1)[None].float() / 255  # 1,3,H,W
    centers = model.quantizer.centers.sort().values
    top = model.cfg.num_levels - 1
    t = model.cfg.transform_channels
    gained, decoded, residuals = [], [], []
    analysed = model.analysis(strip - 0.5).float()  # 1,T,h,w: the same for every level
    for fraction in CALIBRATION_LEVELS:
        level = round(fraction * top)
        y = model.latent(strip, level, analysed)  # 1,M,h,w
        gained.append(y)
        nearest = centers[model.quantizer.symbols(y)] * model.log_inv_gain[level].exp()[None, :, None, None]
        decoded.append(nearest)
        residuals.append(strip - model.first_stage(nearest[:, :t]))
    inputs = {"encoder": {"image": strip.numpy()},
              "hyper_encoder": {"latent": torch.cat(gained, dim=3).numpy()},
              "decoder": {"latent": torch.cat(decoded, dim=3).numpy()}}
    if model.cfg.detail_channels:
        inputs["detail_encoder"] = {"residual": torch.cat(residuals, dim=3).numpy()}
    return inputs


def export_shae_v9(model: ShaeV9, folder: Path, extra: dict[str, Any] | None = None,
                   weights_bits: float | None = None, calibration_crops: list[np.ndarray] | None = None,
                   integer_steps_per_rms: int | None = None) -> str:
    """Write a shae-v9 model folder; returns the model id.

        encoder.onnx        analysis, image 1,3,H,W in [0,1] (H, W multiples of 64) -> y 1,M,H/16,W/16
        hyper_encoder.onnx  hyper-analysis, gained y -> side latent z 1,Cz,H/64,W/64
        decoder.onnx        synthesis, y at the centers times the inverse gains -> image (with a
                            residual stage: both stages, ShaeV9.reconstruct), its transposed
                            convolutions as sub-pixel ones (subpixel_synthesis)
        detail_encoder.onnx with a residual stage only: its projection, residual image -> 1,D,H/16,W/16
        hyperprior.npz      the integer entropy model (imgcodec.hyperprior.HyperpriorTables)
        levels.npz          sorted centers of y and z (float32), gains and inverse gains per level

    The gains stay outside the graphs, so a level between two can be interpolated at run time.
    With `weights_bits`, the three graphs are stored as .shaw files instead (compress_graph),
    calibrated on `calibration_crops` (shae_v9_calibration). With `integer_steps_per_rms`, the
    entropy model's integer networks get coarser weights (imgcodec.train.integer_export), which
    makes hyperprior.npz smaller for a little rate."""
    if weights_bits is not None and not calibration_crops:
        raise ValueError("compressing the weights needs calibration crops")
    model = model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        image = torch.rand(1, 3, 128, 192)
        y = model.latent(image, 0)  # 1,M,h,w

        class _Analysis(torch.nn.Module):
            def __init__(self, analysis: torch.nn.Module) -> None:
                super().__init__()
                self.analysis = analysis

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.analysis(x - 0.5)

        class _Synthesis(torch.nn.Module):
            def __init__(self, model: ShaeV9) -> None:
                super().__init__()
                self.model = model

            def forward(self, latent: torch.Tensor) -> torch.Tensor:
                return self.model.reconstruct(latent)  # both stages

        graphs = [(_Analysis(model.analysis), image, "encoder.onnx", "image", "latent"),
                  (model.hyper_analysis, y, "hyper_encoder.onnx", "latent", "side"),
                  (_Synthesis(model), y, "decoder.onnx", "latent", "image")]
        if model.detail_analysis is not None:  # the residual stage's projection, image -> D,h,w
            graphs.append((model.detail_analysis, image, "detail_encoder.onnx", "residual", "detail"))
        for module, example, name, input_name, output_name in graphs:
            torch.onnx.export(module, (example,), str(folder / name), input_names=[input_name],
                              output_names=[output_name], opset_version=ONNX_OPSET,
                              dynamic_axes={input_name: {2: "h", 3: "w"}, output_name: {2: "oh", 3: "ow"}},
                              dynamo=False)
        subpixel_synthesis(folder / "decoder.onnx", fast=weights_bits is None)
        if weights_bits is not None:
            inputs = shae_v9_calibration(model, calibration_crops)
            for stem in inputs:
                compress_graph(folder / f"{stem}.onnx", weights_bits, inputs[stem])
            # the fast layout, unless it makes the file larger: each phase's record carries its
            # own table, which in a tiny network outweighs the zero taps it drops
            decoder = folder / "decoder.shaw"
            stored = decoder.read_bytes()
            fast = fast_layout_shaw(stored)[0]
            if len(fast) <= len(stored):
                decoder.write_bytes(fast)
        model.frozen_tables(integer_steps_per_rms).save(folder / "hyperprior.npz")
        np.savez(folder / "levels.npz",
                 y_centers=model.quantizer.centers.sort().values.numpy().astype(np.float32),
                 z_centers=model.hyper_quantizer.centers.sort().values.numpy().astype(np.float32),
                 gains=model.log_gain.exp().numpy().astype(np.float32),
                 inverse_gains=model.log_inv_gain.exp().numpy().astype(np.float32))
    suffix = ".onnx" if weights_bits is None else ".shaw"
    decoding = (f"decoder{suffix}", *SHAE_V9_TABLES)
    encoding = (f"encoder{suffix}", f"hyper_encoder{suffix}",
                *((f"detail_encoder{suffix}",) if cfg.detail_channels else ()))
    digest = hashlib.sha256()
    for name in decoding:
        digest.update(bytes.fromhex(file_sha256(folder / name)))
    model_id = digest.hexdigest()[:16]
    meta = {"model_id": model_id, "format": "shaec-model-1", "architecture": "shae-v9", "config": cfg.to_dict(),
            "files": {name: file_sha256(folder / name) for name in (*decoding, *encoding)},
            **({} if weights_bits is None else {"weights": {"bits_per_weight": weights_bits,
                                                            "allocation": "calibrated"}}),
            **({} if integer_steps_per_rms is None else {"integer_weights": {"steps_per_rms": integer_steps_per_rms}}),
            **(extra or {})}
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return model_id
