"""Bayesian Compression with group normal-Jeffreys priors (Louizos, Ullrich, Welling, NIPS 2017,
"BC-GNJ"): whole units are pruned, and each layer's precision follows from its posterior.

Every weight is w = z_g * w~ with one scale z_g per group (a fully connected layer's input unit,
a convolution's output filter). The prior is log-uniform (Jeffreys) on z_g and N(0, z_g^2) on w
given z_g; the variational posterior is q(z_g) = N(mu_g, sigma_g^2) and q(w~) = N(theta,
sigma^2). Training minimises cross-entropy + KL / N_train, where KL(q(z) || p(z)) uses Molchanov
et al.'s approximation (ICML 2017, eq. 14) in log alpha_g = log sigma_g^2 / mu_g^2, and KL(q(w~|z)
|| p(w~|z)) = 1/2 (theta^2 + sigma^2 - log sigma^2 - 1). The forward pass samples z per example
and the layer's pre-activations by the local reparameterisation trick (Kingma et al., NIPS 2015).
A group whose log alpha exceeds a threshold (the paper's 3) carries only noise and is pruned.
The remaining weights are stored at their posterior mean, quantized with one step per layer
that follows the layer's posterior variances (the paper's idea: weights the posterior cannot
tell apart need no more precision). The step is `precision` times the square root of the
harmonic mean of the kept weights' variances: a posterior variance ~ 1 / (N x curvature), so the
harmonic mean measures the layer's sensitivity the way the bit allocation of
imgcodec.weights.codec does, where the plain mean (dominated by weights the KL term pushed to
their prior) gave steps that lost most of the accuracy. The symbols are range-coded (codec 1,
uniform), where whole pruned columns cost almost nothing under the column contexts.

    bc = BayesianCompression(model)
    optimizer = torch.optim.Adam(bc.parameter_groups())
    loss = cross_entropy(model(x), y) + bc.kl() / n_train      # model(x) runs through bc's hooks
    records = bc.records(threshold=3.0)                        # + the biases, exact or float16
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .codec import WeightCodecConfig, quantizable, tensor_record
from .container import Record

#: Molchanov et al.'s fit of -KL(q || log-uniform) as a function of log alpha (ICML 2017, eq. 14).
K1, K2, K3 = 0.63576, 1.87320, 1.48695
EPS = 1e-8


class _Layer(nn.Module):
    """The variational parameters of one Linear or Conv2d layer's weight."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        weight = module.weight.detach()
        self.conv = isinstance(module, nn.Conv2d)
        self.weight_dim = weight.dim()
        # Groups: output filters of a convolution (dim 0), input units of a linear layer (dim 1).
        per_group = weight.transpose(0, 1) if not self.conv else weight
        scale = per_group.reshape(per_group.shape[0], -1).pow(2).mean(dim=1).sqrt().clamp_min(1e-3)  # G
        self.z_mu = nn.Parameter(scale.clone())
        self.z_logvar = nn.Parameter(torch.log(scale ** 2) - 8.0)  # alpha = e^-8 to start: nearly no noise
        self.theta = nn.Parameter(weight / self._expand(scale))  # O(1) per group
        self.w_logvar = nn.Parameter(torch.full_like(weight, -8.0))

    def _expand(self, per_group: torch.Tensor) -> torch.Tensor:
        """A per-group vector shaped to broadcast over the weight."""
        if self.conv:
            return per_group.reshape(-1, *[1] * (self.weight_dim - 1))
        return per_group.reshape(1, -1)

    def log_alpha(self) -> torch.Tensor:
        return self.z_logvar - torch.log(self.z_mu ** 2 + EPS)

    def kl(self) -> torch.Tensor:
        log_alpha = self.log_alpha()
        kl_z = -(K1 * torch.sigmoid(K2 + K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - K1).sum()
        kl_w = 0.5 * (self.theta ** 2 + self.w_logvar.exp() - self.w_logvar - 1).sum()
        return kl_z + kl_w

    def mean_weight(self) -> torch.Tensor:
        return self.theta * self._expand(self.z_mu)

    def variance(self) -> torch.Tensor:
        """Posterior variance of w = z * w~: E[z^2] E[w~^2] - (E z E w~)^2."""
        z2 = self._expand(self.z_mu ** 2 + self.z_logvar.exp())
        return z2 * (self.theta ** 2 + self.w_logvar.exp()) - self.mean_weight() ** 2

    def forward(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The layer's output for input x: sampled in training, the posterior mean otherwise."""
        linear = F.conv2d if self.conv else F.linear
        options = {"stride": module.stride, "padding": module.padding, "dilation": module.dilation,
                   "groups": module.groups} if self.conv else {}
        if not self.training:
            return linear(x, self.mean_weight(), module.bias, **options)
        std = (0.5 * self.z_logvar).exp()
        if self.conv:
            mean = linear(x, self.theta, None, **options)
            var = linear(x * x, self.w_logvar.exp(), None, **options)
            pre = mean + (var + EPS).sqrt() * torch.randn_like(mean)
            z = self.z_mu + std * torch.randn(x.shape[0], len(std))  # batch,G
            out = pre * z[:, :, None, None]
            return out if module.bias is None else out + module.bias[:, None, None]
        # One z per example and input unit (batch,...,G: a sequence shares its example's z).
        z = self.z_mu + std * torch.randn(x.shape[0], *[1] * (x.dim() - 2), len(std))
        x = x * z
        mean = linear(x, self.theta, module.bias)
        var = linear(x * x, self.w_logvar.exp())
        return mean + (var + EPS).sqrt() * torch.randn_like(mean)


class BayesianCompression(nn.Module):
    """BC-GNJ over every Linear and Conv2d layer of `model` whose weight is quantizable (see the
    module docstring). While it exists, those layers compute through it (forward hooks); its
    train()/eval() state chooses sampling or the posterior mean."""

    def __init__(self, model: nn.Module, min_size: int = 256) -> None:
        super().__init__()
        self.model = [model]  # not a submodule: its parameters stay the caller's
        config = WeightCodecConfig(min_size=min_size)
        self.names: list[str] = []
        self.layers = nn.ModuleDict()
        self._hooks = []
        for name, module in model.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)) and \
                    quantizable(module.weight.detach().numpy(), "<f4", config):
                layer = _Layer(module)
                self.names.append(f"{name}.weight")
                self.layers[name.replace(".", "__")] = layer
                self._hooks.append(module.register_forward_hook(
                    lambda m, inputs, output, layer=layer: layer(m, inputs[0])))

    def remove(self) -> None:
        """Give the layers back their own forward."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def parameter_groups(self, lr: float = 1e-3, variance_lr: float = 1e-2) -> list[dict[str, object]]:
        """Adam groups: means (and the model's other parameters) at lr, the log variances faster
        (they start far from where the KL term takes them, and short runs must get there)."""
        variances = [p for n, p in self.named_parameters() if n.endswith("logvar")]
        means = [p for n, p in self.named_parameters() if not n.endswith("logvar")]
        return [{"params": means + self.other_parameters(), "lr": lr}, {"params": variances, "lr": variance_lr}]

    def other_parameters(self) -> list[nn.Parameter]:
        """The model's parameters that Bayesian Compression does not replace (biases, others)."""
        return [p for n, p in self.model[0].named_parameters() if n not in self.names]

    def kl(self) -> torch.Tensor:
        """KL(q || prior) summed over the layers, in nats."""
        return sum((layer.kl() for layer in self.layers.values()), torch.zeros(()))

    @torch.no_grad()
    def kept_groups(self, threshold: float = 3.0) -> dict[str, np.ndarray]:
        """weight name -> boolean mask of its groups with log alpha below the threshold."""
        return {name: (layer.log_alpha() < threshold).numpy() for name, layer in zip(self.names, self.layers.values())}

    @torch.no_grad()
    def finalize(self, threshold: float = 3.0, precision: float = 1.0) -> dict[str, tuple[np.ndarray, float]]:
        """weight name -> (posterior mean with pruned groups at 0, quantization step: `precision`
        times the root of the harmonic mean of the kept weights' posterior variances)."""
        out = {}
        for (name, layer), keep in zip(zip(self.names, self.layers.values()), self.kept_groups(threshold).values()):
            mask = layer._expand(torch.from_numpy(keep).float())
            weight = (layer.mean_weight() * mask).numpy().astype(np.float32)
            inverse = mask.expand_as(layer.theta) / layer.variance().clamp_min(1e-20)
            harmonic = mask.expand_as(layer.theta).sum().clamp_min(1) / inverse.sum().clamp_min(1e-20)
            out[name] = (weight, float(precision * harmonic.sqrt()))
        return out

    def records(self, threshold: float = 3.0, precision: float = 1.0) -> list[Record]:
        """.shaw records (uniform codec) of the layers' weights (finalize)."""
        config = WeightCodecConfig(deadzone=0.0)
        return [tensor_record(name, weight, "<f4", step, config)
                for name, (weight, step) in self.finalize(threshold, precision).items()]
