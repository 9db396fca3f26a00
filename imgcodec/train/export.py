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
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..zoo import WEIGHT_FILES
from .shae_v8 import ShaeV8
from .shae_v9 import ShaeV9

ONNX_OPSET = 17


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
            counts=prior.counts.astype(np.uint16),
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


#: shae-v9's files. The model id covers what decoding needs (the first three); the encoders'
#: hashes are checked on load like every file's.
SHAE_V9_DECODER_FILES = ("decoder.onnx", "hyperprior.npz", "levels.npz")
SHAE_V9_FILES = SHAE_V9_DECODER_FILES + ("encoder.onnx", "hyper_encoder.onnx")


def export_shae_v9(model: ShaeV9, folder: Path, extra: dict[str, Any] | None = None) -> str:
    """Write a shae-v9 model folder; returns the model id.

        encoder.onnx        analysis, image 1,3,H,W in [0,1] (H, W multiples of 64) -> y 1,M,H/16,W/16
        hyper_encoder.onnx  hyper-analysis, gained y -> side latent z 1,Cz,H/64,W/64
        decoder.onnx        synthesis, y at the centers times the inverse gains -> image
        hyperprior.npz      the integer entropy model (imgcodec.hyperprior.HyperpriorTables)
        levels.npz          sorted centers of y and z (float32), gains and inverse gains per level

    The gains stay outside the graphs, so a level between two can be interpolated at run time."""
    model = model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        image = torch.rand(1, 3, 128, 192)
        y = model.analysis(image - 0.5)

        class _Analysis(torch.nn.Module):
            def __init__(self, analysis: torch.nn.Module) -> None:
                super().__init__()
                self.analysis = analysis

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.analysis(x - 0.5)

        class _Synthesis(torch.nn.Module):
            def __init__(self, synthesis: torch.nn.Module) -> None:
                super().__init__()
                self.synthesis = synthesis

            def forward(self, latent: torch.Tensor) -> torch.Tensor:
                return self.synthesis(latent) + 0.5

        graphs = ((_Analysis(model.analysis), image, "encoder.onnx", "image", "latent"),
                  (model.hyper_analysis, y, "hyper_encoder.onnx", "latent", "side"),
                  (_Synthesis(model.synthesis), y, "decoder.onnx", "latent", "image"))
        for module, example, name, input_name, output_name in graphs:
            torch.onnx.export(module, (example,), str(folder / name), input_names=[input_name],
                              output_names=[output_name], opset_version=ONNX_OPSET,
                              dynamic_axes={input_name: {2: "h", 3: "w"}, output_name: {2: "oh", 3: "ow"}},
                              dynamo=False)
        model.frozen_tables().save(folder / "hyperprior.npz")
        np.savez(folder / "levels.npz",
                 y_centers=model.quantizer.centers.sort().values.numpy().astype(np.float32),
                 z_centers=model.hyper_quantizer.centers.sort().values.numpy().astype(np.float32),
                 gains=model.log_gain.exp().numpy().astype(np.float32),
                 inverse_gains=model.log_inv_gain.exp().numpy().astype(np.float32))
    digest = hashlib.sha256()
    for name in SHAE_V9_DECODER_FILES:
        digest.update(bytes.fromhex(file_sha256(folder / name)))
    model_id = digest.hexdigest()[:16]
    meta = {"model_id": model_id, "format": "shaec-model-1", "architecture": "shae-v9", "config": cfg.to_dict(),
            "files": {name: file_sha256(folder / name) for name in SHAE_V9_FILES}, **(extra or {})}
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return model_id
