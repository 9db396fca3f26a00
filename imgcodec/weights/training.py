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
    sha.freeze_assignments()                  # optional: then train the centers alone (loss without rate)
    data = pack(sha.records(tensors_of_the_rest))
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .codec import WeightCodecConfig, quantizable, symbol_fields
from .container import CODEC_CODEBOOK, Record
from .symbols import encode_symbols


class SoftToHardWeights(nn.Module):
    """Learned centers for each quantizable weight of `model` (see the module docstring)."""

    def __init__(self, model: nn.Module, num_centers: int = 16, min_size: int = 1024, sigma: float = 1.0) -> None:
        super().__init__()
        self.model = [model]  # not a submodule: its parameters stay the caller's
        self.sigma = sigma
        self.frozen: dict[str, torch.Tensor] | None = None  # symbols fixed by freeze_assignments
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

    def freeze_assignments(self) -> None:
        """Fix every weight's center (the nearest one now) for a last phase that trains the
        centers alone, as Deep Compression fine-tunes its shared centroids (Han et al., ICLR
        2016, Sec. 3): accuracy comes back while the symbols, and so the rate, stay as they are.
        Afterwards the forward pass uses centers[symbol], the gradient of a center is the sum of
        its weights' gradients, and the zero center (the pruned weights) stays 0."""
        self.frozen = self._nearest_symbols()

    @torch.no_grad()
    def _nearest_symbols(self) -> dict[str, torch.Tensor]:
        """name -> index of each weight's nearest center, in the weight's shape."""
        out = {}
        for name in self.names:
            weight = self.model[0].get_parameter(name)
            out[name] = ((weight.reshape(-1, 1) - self._centers(name)) ** 2).argmin(dim=1).reshape(weight.shape)
        return out

    def _assign(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(quantized weight with the soft gradient, soft assignment N,L) of one tensor."""
        weight = self.model[0].get_parameter(name)
        centers = self._centers(name)
        if self.frozen is not None:
            symbols = self.frozen[name]
            return centers[symbols], F.one_hot(symbols.reshape(-1), len(centers)).float()
        dist = (weight.reshape(-1, 1) - centers) ** 2  # N,L
        soft = torch.softmax(-self.sigma * dist / dist.detach().mean().clamp_min(1e-12), dim=1)
        hard = centers[dist.argmin(dim=1)]
        values = (soft * centers).sum(dim=1)
        values = values + (hard - values).detach()
        return values.reshape(weight.shape), soft

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The model's output with every quantizable weight replaced by its nearest center (its
        frozen one after freeze_assignments)."""
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
        """name -> (centers float32 L, symbols int of the weight's shape): nearest centers, or
        the frozen assignment."""
        symbols = self.frozen if self.frozen is not None else self._nearest_symbols()
        return {name: (self._centers(name).float().numpy().astype(np.float32), symbols[name].numpy())
                for name in self.names}

    def records(self) -> list[Record]:
        """.shaw records of the quantized tensors: the centers, an integer table of how often
        each is used, and the range-coded symbols."""
        return [codebook_record(name, centers, symbols) for name, (centers, symbols) in self.finalize().items()]


def codebook_record(name: str, centers: np.ndarray, symbols: np.ndarray) -> Record:
    """A CODEC_CODEBOOK record: value = centers[symbol]. Centers nothing uses are dropped (fewer
    table entries), and the symbols are range-coded (imgcodec.weights.symbols)."""
    keep = np.flatnonzero(np.bincount(symbols.ravel(), minlength=len(centers)))
    remap = np.full(len(centers), -1)
    remap[keep] = np.arange(len(keep))
    table_centers = centers[keep]
    if len(table_centers) < 2:  # a table has two entries at least
        table_centers = np.append(table_centers, np.float32(0))
    return Record(name, "<f4", tuple(symbols.shape), CODEC_CODEBOOK, centers=table_centers.astype(np.float32),
                  **symbol_fields(encode_symbols(remap[symbols], len(table_centers))))


class SoftWeightSharing(nn.Module):
    """Soft Weight-Sharing (Ullrich, Meeds, Welling, ICLR 2017): one Gaussian-mixture prior over
    all quantizable weights of `model`, retrained with loss = task loss + tau * complexity.

    Component 0 sits at 0 with a fixed mixing proportion pi_zero (the paper's 0.999), so most
    weights are pulled to 0 (pruning); the other components' means, variances and proportions
    are learned and the weights cluster around them (weight sharing). Gamma hyperpriors on the
    precisions keep components from collapsing (the paper's shapes and rates: zero component
    Gamma(5000, 2), others Gamma(250, 0.1)). After training `finalize` gives every weight the
    mean of its most responsible component, and `records` codes them as .shaw codebooks.

        sws = SoftWeightSharing(model, components=17)
        optimizer = torch.optim.Adam(sws.parameter_groups(), ...)
        loss = cross_entropy(model(x), y) + tau * sws.complexity() / sws.num_weights
    """

    def __init__(self, model: nn.Module, components: int = 17, pi_zero: float = 0.999, min_size: int = 1024) -> None:
        super().__init__()
        self.model = [model]
        config = WeightCodecConfig(min_size=min_size)
        self.names = [n for n, p in model.named_parameters()
                      if quantizable(p.detach().numpy(), "<f4", config) and p.dtype == torch.float32]
        weights = torch.cat([model.get_parameter(n).detach().flatten() for n in self.names])
        reach = float(weights.abs().max())
        # Non-zero means evenly over the weights' range (both signs), as the paper initialises them.
        others = torch.linspace(-reach, reach, components - 1)
        self.means = nn.Parameter(others)  # J-1
        spacing = 2 * reach / max(1, components - 2)
        self.log_precisions = nn.Parameter(torch.full((components,), -2 * math.log(spacing / 2)))  # J
        self.mixing_logits = nn.Parameter(torch.zeros(components - 1))  # J-1, sharing 1 - pi_zero
        self.log_pi_zero = math.log(pi_zero)
        self.log_rest = math.log1p(-pi_zero)

    @property
    def num_weights(self) -> int:
        model = self.model[0]
        return sum(model.get_parameter(n).numel() for n in self.names)

    def parameter_groups(self, weights_lr: float = 5e-4) -> list[dict[str, object]]:
        """Adam groups with the paper's learning rates: weights 5e-4, means 1e-4, log precisions
        and mixing proportions 3e-3."""
        model = self.model[0]
        return [{"params": [model.get_parameter(n) for n in self.names], "lr": weights_lr},
                {"params": [p for n, p in model.named_parameters() if n not in self.names], "lr": weights_lr},
                {"params": [self.means], "lr": 1e-4},
                {"params": [self.log_precisions, self.mixing_logits], "lr": 3e-3}]

    def _mixture(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means J, log precisions J, log proportions J) with component 0 the fixed zero one."""
        means = torch.cat([torch.zeros(1), self.means])
        log_pi = torch.cat([torch.full((1,), self.log_pi_zero),
                            self.log_rest + torch.log_softmax(self.mixing_logits, dim=0)])
        return means, self.log_precisions, log_pi

    def _log_joint(self, weights: torch.Tensor) -> torch.Tensor:
        """log pi_j + log N(w | mu_j, 1/lambda_j) for every weight and component: N,J."""
        means, log_lambda, log_pi = self._mixture()
        diff = weights.reshape(-1, 1) - means
        return log_pi + 0.5 * (log_lambda - math.log(2 * math.pi)) - 0.5 * log_lambda.exp() * diff ** 2

    def complexity(self) -> torch.Tensor:
        """-log p(w) under the mixture, minus the Gamma hyperpriors' log density of the precisions
        (nats, up to constants)."""
        model = self.model[0]
        weights = torch.cat([model.get_parameter(n).flatten() for n in self.names])
        nll = -torch.logsumexp(self._log_joint(weights), dim=1).sum()
        precision = self.log_precisions.exp()
        shape = torch.tensor([5000.0] + [250.0] * (len(precision) - 1))
        rate = torch.tensor([2.0] + [0.1] * (len(precision) - 1))
        hyper = ((shape - 1) * self.log_precisions - rate * precision).sum()
        return nll - hyper

    @torch.no_grad()
    def finalize(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """name -> (centers float32 J, symbols of the weight's shape): each weight's most
        responsible component; the centers are the component means (0 for component 0)."""
        means = self._mixture()[0].float().numpy().astype(np.float32)
        out = {}
        for name in self.names:
            weight = self.model[0].get_parameter(name)
            symbols = self._log_joint(weight.flatten()).argmax(dim=1).reshape(weight.shape)
            out[name] = (means, symbols.numpy())
        return out

    def records(self) -> list[Record]:
        return [codebook_record(name, centers, symbols) for name, (centers, symbols) in self.finalize().items()]


def anneal(step: int, steps: int, start: float = 1.0, end: float = 100.0) -> float:
    """Geometric sigma schedule from start to end over the steps."""
    return start * math.exp(math.log(end / start) * min(1.0, step / max(1, steps)))
