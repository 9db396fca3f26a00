"""Training-mode weight compression: the soft-to-hard relaxation applied to weights.

Agustsson et al. (NIPS 2017, Sec. 3 and the DNN-compression experiments): every quantized tensor
gets L learned centers, one of them fixed at 0 (pruning). In the forward pass a weight is its
nearest center; the gradient is that of the soft assignment softmax(-sigma (w - c)^2), whose
sharpness sigma the caller anneals. The rate term is the entropy of the tensor's soft histogram
(the mean soft assignment) times its number of weights: minimising task loss + beta * bits moves
weights onto few, frequent centers. After training, `finalize` gives each tensor's centers and
symbols, and `records` codes them into .shaw records (CODEC_CODEBOOK).

    sha = SoftToHardWeights(model, num_centers=16)
    optimizer = torch.optim.Adam([*model.parameters(), *sha.parameters()], 1e-4)
    for step ...:
        sha.sigma = ...                       # annealed upward
        logits = sha.forward(x)               # the model with quantized weights
        loss = cross_entropy(logits, y) + beta * sha.rate_bits() / sha.num_weights
    data = pack(sha.records(tensors_of_the_rest))
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..context_prior import quantize_probabilities
from ..coder import encode_iid
from .codec import WeightCodecConfig, quantizable
from .container import CODEC_CODEBOOK, Record


class SoftToHardWeights(nn.Module):
    """Learned centers for each quantizable weight of `model` (see the module docstring)."""

    def __init__(self, model: nn.Module, num_centers: int = 16, min_size: int = 1024, sigma: float = 1.0) -> None:
        super().__init__()
        self.model = [model]  # not a submodule: its parameters stay the caller's
        self.sigma = sigma
        config = WeightCodecConfig(min_size=min_size)
        self.names = [n for n, p in model.named_parameters()
                      if quantizable(p.detach().numpy(), "<f4", config) and p.dtype == torch.float32]
        self.centers = nn.ParameterDict()
        for name in self.names:
            weight = model.get_parameter(name).detach().flatten()
            # Non-zero centers start at quantiles of the weights (both signs); 0 is fixed.
            quantiles = torch.linspace(0.02, 0.98, num_centers - 1)
            self.centers[name.replace(".", "__")] = nn.Parameter(torch.quantile(weight, quantiles))

    @property
    def num_weights(self) -> int:
        model = self.model[0]
        return sum(model.get_parameter(n).numel() for n in self.names)

    def _centers(self, name: str) -> torch.Tensor:
        return torch.cat([torch.zeros(1), self.centers[name.replace(".", "__")]])  # index 0 is the zero center

    def _assign(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(quantized weight with the soft gradient, soft assignment N,L) of one tensor."""
        weight = self.model[0].get_parameter(name)
        centers = self._centers(name)
        dist = (weight.reshape(-1, 1) - centers) ** 2  # N,L
        soft = torch.softmax(-self.sigma * dist / dist.detach().mean().clamp_min(1e-12), dim=1)
        hard = centers[dist.argmin(dim=1)]
        values = (soft * centers).sum(dim=1)
        values = values + (hard - values).detach()
        return values.reshape(weight.shape), soft

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The model's output with every quantizable weight replaced by its nearest center."""
        model = self.model[0]
        replaced = {name: self._assign(name)[0] for name in self.names}
        return torch.func.functional_call(model, replaced, inputs, strict=False)

    def rate_bits(self) -> torch.Tensor:
        """Sum over tensors of (number of weights) x (entropy of the soft histogram), in bits."""
        total = torch.zeros(())
        for name in self.names:
            _, soft = self._assign(name)
            p = soft.mean(dim=0).clamp_min(1e-12)
            total = total + soft.shape[0] * -(p * torch.log2(p)).sum()
        return total

    @torch.no_grad()
    def finalize(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """name -> (centers float32 L, symbols int of the weight's shape): nearest centers."""
        out = {}
        for name in self.names:
            weight = self.model[0].get_parameter(name)
            centers = self._centers(name).float()
            symbols = ((weight.reshape(-1, 1) - centers) ** 2).argmin(dim=1).reshape(weight.shape)
            out[name] = (centers.numpy().astype(np.float32), symbols.numpy())
        return out

    def records(self) -> list[Record]:
        """.shaw records of the quantized tensors: the centers, an integer table of how often
        each is used, and the range-coded symbols."""
        records = []
        for name, (centers, symbols) in self.finalize().items():
            hist = np.bincount(symbols.ravel(), minlength=len(centers)).astype(np.float64)
            used = hist > 0
            keep = np.flatnonzero(used)  # drop centers nothing uses: fewer table entries
            remap = np.full(len(centers), -1)
            remap[keep] = np.arange(len(keep))
            table_centers = centers[keep]
            if len(table_centers) < 2:  # a table has two entries at least
                table_centers = np.append(table_centers, np.float32(0))
                keep_hist = np.append(hist[keep], 0.0)
            else:
                keep_hist = hist[keep]
            counts = quantize_probabilities(keep_hist / keep_hist.sum()).astype(np.uint16)
            coded = remap[symbols]
            records.append(Record(name, "<f4", tuple(symbols.shape), CODEC_CODEBOOK, counts=counts,
                                  centers=table_centers.astype(np.float32), payload=encode_iid(coded, counts)))
        return records


def anneal(step: int, steps: int, start: float = 1.0, end: float = 100.0) -> float:
    """Geometric sigma schedule from start to end over the steps."""
    return start * math.exp(math.log(end / start) * min(1.0, step / max(1, steps)))
