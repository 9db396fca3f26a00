"""shae-v9: a latent at 1/16 with a hyperprior and channel-group context, all soft-to-hard.

Transforms after Balle et al. (ICLR 2017, 2018): four 5x5 stride-2 convolutions with GDN each
side. The latent y (M channels) is scaled by a per-level gain vector (Cui et al., CVPR 2021) and
quantized to learned centers with the soft-to-hard relaxation (Agustsson et al., NIPS 2017); so
is the side latent z of the hyperprior (Balle et al., ICLR 2018). The channels of y are coded in
uneven groups (He et al., "ELIC", CVPR 2022); each group's distribution is a Gaussian, integrated
over the bins of the centers, whose mean and scale come from the hyper-synthesis and the groups
decoded before it (Minnen & Singh, ICIP 2020). The decoder thus needs one parallel pass per group.
The z prior is one categorical per channel, shared by all levels, so gains can be interpolated
between levels for continuous rate control.

Only the transforms are float at run time. The parameter networks are the part that must be
bit-exact across machines (they select probabilities); they are exported as integer networks
(Balle, Johnston, Minnen, ICLR 2019), see docs/architecture.md.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

import numpy as np

from ..config import ShaeV9Config
from ..context_prior import TABLE_TOTAL, quantize_probabilities
from ..gaussian_tables import GaussianGrid, YTables, normal_table
from ..hyperprior import HyperpriorTables, anchor_mask, grid_centers
from ..integer_net import to_fixed
from .integer_export import int_sequential
from .lookup import take
from .quantizer import SoftToHardQuantizer, WindowedQuantized
from .transforms import GDN

LIKELIHOOD_FLOOR = 1e-9  # smallest probability of the float tables (export quantizes them to counts)


def _conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _deconv(cin: int, cout: int, kernel: int = 5) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=kernel // 2, output_padding=1)


class GroupParameters(nn.Module):
    """Mean and scale of one channel group from the hyper features, the groups before it and,
    with cfg.spatial_features, the group's own anchors (a checkerboard: He et al., CVPR 2021)."""

    def __init__(self, cfg: ShaeV9Config, group: int) -> None:
        super().__init__()
        before = sum(cfg.groups[:group])
        self.context = nn.Conv2d(before, cfg.context_features, 5, padding=2) if before else None
        features = cfg.spatial_features
        self.spatial = nn.Conv2d(cfg.groups[group], features, 5, padding=2) if features else None
        width = cfg.param_features + (cfg.context_features if before else 0) + features
        self.net = nn.Sequential(
            nn.Conv2d(width, 224, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(224, 128, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(128, 2 * cfg.groups[group], 1),
        )

    def forward(self, hyper: torch.Tensor, decoded: torch.Tensor | None,
                current: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """hyper: N,P,h,w; decoded: N,before,h,w (None for the first group); current: the group's
        own decoded values N,G,h,w (read only at the anchors, for the other positions; needed with
        a spatial context) -> mean, log-scale. Both passes of the checkerboard in one: the
        anchors' spatial features are 0, as the decoder has none when it codes them."""
        parts = [hyper] if self.context is None else [hyper, self.context(decoded)]
        if self.spatial is not None:
            if current is None:
                raise ValueError("a group with a spatial context needs its own decoded values")
            anchors = torch.from_numpy(anchor_mask(*current.shape[2:])).to(current.device, current.dtype)  # h,w
            parts.append(self.spatial(current * anchors) * (1 - anchors))
        mean, log_scale = self.net(torch.cat(parts, dim=1) if len(parts) > 1 else hyper).chunk(2, dim=1)
        return mean, log_scale


def gaussian_bin_log2(values_sorted_centers: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log2 of the probability of every center's bin under N(mean, scale): N,C,h,w,L.

    The bins are split at the midpoints between sorted centers; the outer two reach to infinity."""
    centers = values_sorted_centers
    edges = (centers[1:] + centers[:-1]) / 2  # L-1
    t = (edges - mean.unsqueeze(-1)) / scale.unsqueeze(-1)  # N,C,h,w,L-1
    # Upper-tail form where the edge is above the mean keeps precision in float32.
    cdf = torch.special.ndtr(t)
    ones = torch.ones_like(t[..., :1])
    zeros = torch.zeros_like(t[..., :1])
    upper = torch.cat([cdf, ones], dim=-1)
    lower = torch.cat([zeros, cdf], dim=-1)
    sf = torch.special.ndtr(-t)
    upper_sf = torch.cat([sf, zeros], dim=-1)
    lower_sf = torch.cat([ones, sf], dim=-1)
    above = (torch.cat([t, t[..., -1:]], dim=-1) > 0)  # the bin's upper edge above the mean
    probs = torch.where(above, lower_sf - upper_sf, upper - lower)
    return torch.log2(probs.clamp_min(LIKELIHOOD_FLOOR))


#: Stands in for the infinite outer edges: far enough that every bin's mass beyond it is 0 in
#: float32, finite so that no gradient becomes 0 * inf.
_OUTER_EDGE = 1e6


def coded_log2(log_p: torch.Tensor, num_centers: int) -> torch.Tensor:
    """log2 of what the real coder charges for a symbol of model probability exp(log_p):
    quantize_probabilities gives every symbol one count of TABLE_TOTAL and shares the rest by
    probability, p (1 - L e) + e with e = 1 / TABLE_TOTAL. Training on this prices a symbol
    the model finds very unlikely at ~16 bits, as the file does, and the estimate tracks the
    real rate."""
    eps = 1.0 / TABLE_TOTAL
    scaled = log_p + math.log1p(-num_centers * eps)
    return torch.logaddexp(scaled, torch.full_like(scaled, math.log(eps))) / math.log(2.0)


def _bin_probabilities(sorted_centers: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
                       index: torch.Tensor) -> torch.Tensor:
    """Probability of the bin of sorted center `index` under N(mean, scale), floored at
    LIKELIHOOD_FLOOR; index, mean and scale broadcast together. The bins of gaussian_bin_log2."""
    edges = (sorted_centers[1:] + sorted_centers[:-1]) / 2  # L-1
    outer = sorted_centers.new_full((1,), _OUTER_EDGE)
    padded = torch.cat([-outer, edges, outer])  # L+1
    t_lower = (take(padded, index) - mean) / scale
    t_upper = (take(padded, index + 1) - mean) / scale
    # Upper-tail form where the bin's upper edge is above the mean keeps precision in float32.
    probs = torch.where(t_upper > 0, torch.special.ndtr(-t_lower) - torch.special.ndtr(-t_upper),
                        torch.special.ndtr(t_upper) - torch.special.ndtr(t_lower))
    return probs.clamp_min(LIKELIHOOD_FLOOR)


def gaussian_bin_log2_at(sorted_centers: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
                         index: torch.Tensor) -> torch.Tensor:
    """What the coder charges, in log2 (coded_log2), for the bin of sorted center `index` under
    N(mean, scale): N,C,h,w. The same bins as gaussian_bin_log2, evaluated at one center per
    value, so that the rate's gradient (which reaches the probabilities only at the hard symbol)
    costs 1/L of the full table."""
    return coded_log2(torch.log(_bin_probabilities(sorted_centers, mean, scale, index)), len(sorted_centers))


def gaussian_bin_log2_window(sorted_centers: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
                             window: torch.Tensor) -> torch.Tensor:
    """gaussian_bin_log2 at the sorted centers of a window per value: mean, scale N,C,h,w;
    window N,C,h,w,K -> N,C,h,w,K (the table that a windowed soft assignment meets)."""
    return torch.log2(_bin_probabilities(sorted_centers, mean.unsqueeze(-1), scale.unsqueeze(-1), window))


#: Centers around each latent value's nearest one that its soft assignment spans in training
#: (SoftToHardQuantizer.windowed: forward()'s results to float32 rounding, in less time;
#: docs/training.md).
SOFT_WINDOW = 7

#: Grids that snap the parameter networks' outputs to frozen tables (HyperpriorTables): means
#: every MEAN_STEP from the lowest center to the highest, scales log-uniform from scale_min to
#: SCALE_MAX in SCALE_CELLS cells (about 10 % apart).
MEAN_STEP = 0.25
SCALE_MAX = 64.0
SCALE_CELLS = 64


def y_table_grid(y_centers: np.ndarray, num_means: int, scale_min: float) -> GaussianGrid:
    """The Gaussians of y's tables (frozen_tables: means every MEAN_STEP from the lowest
    center, SCALE_CELLS scales evenly spaced in log from scale_min to SCALE_MAX) over y's
    fixed-point centers, for storing the tables as what rebuilds them (imgcodec.gaussian_tables;
    the few counts where the export's float tables round otherwise are stored beside it)."""
    centers = grid_centers(y_centers)
    scales = np.exp(np.linspace(math.log(scale_min), math.log(SCALE_MAX), SCALE_CELLS))
    return GaussianGrid(centers, centers[0] + MEAN_STEP * np.arange(num_means), scales, LIKELIHOOD_FLOOR,
                        *normal_table())


class ShaeV9(nn.Module):
    """forward(x, level) for training; frozen_tables() exports the bit-exact entropy model, with
    which compress/decompress code real bytes (CompressAI's model contract)."""

    def __init__(self, cfg: ShaeV9Config = ShaeV9Config()) -> None:
        super().__init__()
        self.cfg = cfg
        n, m, hz = cfg.channels, cfg.latent_channels, cfg.hyper_channels
        t, d, block = cfg.transform_channels, cfg.detail_channels, cfg.downscale
        n2, n4 = cfg.half_resolution_channels, cfg.quarter_resolution_channels  # at 1/2 and 1/4 resolution
        self.analysis = nn.Sequential(_conv(3, n2), GDN(n2), _conv(n2, n4), GDN(n4), _conv(n4, n), GDN(n),
                                      _conv(n, t))
        self.synthesis = nn.Sequential(
            _deconv(t, n), GDN(n, inverse=True), _deconv(n, n4), GDN(n4, inverse=True),
            _deconv(n4, n2), GDN(n2, inverse=True), _deconv(n2, 3))
        # the residual stage (ShaeV9Config): one linear projection per 16x16 block each way
        self.detail_analysis = nn.Conv2d(3, d, block, stride=block, bias=False) if d else None
        self.detail_synthesis = nn.ConvTranspose2d(d, 3, block, stride=block, bias=False) if d else None
        self.hyper_analysis = nn.Sequential(
            _conv(m, n, 3, 1), nn.LeakyReLU(0.1), _conv(n, n), nn.LeakyReLU(0.1), _conv(n, hz))
        self.hyper_synthesis = nn.Sequential(
            _deconv(hz, n), nn.LeakyReLU(0.1), _deconv(n, n), nn.LeakyReLU(0.1),
            _conv(n, cfg.param_features, 3, 1))
        self.parameters_of_group = nn.ModuleList(GroupParameters(cfg, g) for g in range(len(cfg.groups)))
        half = (cfg.num_centers - 1) / 2
        self.quantizer = SoftToHardQuantizer(cfg.num_centers, half)
        self.hyper_quantizer = SoftToHardQuantizer(cfg.hyper_num_centers, (cfg.hyper_num_centers - 1) / 2)
        self.hyper_logits = nn.Parameter(torch.zeros(hz, cfg.hyper_num_centers))  # C_z,L_z
        # Gains span 0.5 .. 4 at the start (Cui et al.): the low levels put most values on few centers.
        init = torch.linspace(math.log(0.5), math.log(4.0), cfg.num_levels)
        self.log_gain = nn.Parameter(init[:, None].repeat(1, m))  # levels,M
        self.log_inv_gain = nn.Parameter(-init[:, None].repeat(1, m))

    def level_parameters(self) -> list[nn.Parameter]:
        return [self.log_gain, self.log_inv_gain]

    def entropy_parameters(self) -> list[nn.Parameter]:
        """The parts that learn faster (like CompressAI's auxiliary optimizer's share)."""
        return [self.hyper_logits]

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: N,3,H,W in [0,1] (H, W multiples of 64), level: N -> {"x_hat": N,3,H,W,
        "bits": N (latent + side latent), "side_bits": N}. The transforms may run under autocast;
        quantization and rates are computed in float32."""
        gain = self.log_gain[level].exp()[:, :, None, None]  # N,M,1,1
        inv_gain = self.log_inv_gain[level].exp()[:, :, None, None]
        t = self.cfg.transform_channels
        y = self.analysis(x - 0.5).float() * gain[:, :t]  # N,T,h,w
        qy = self.quantizer.windowed(y, SOFT_WINDOW)
        x_hat = self.synthesis(qy.values * inv_gain[:, :t]).float() + 0.5  # N,3,H,W
        if self.detail_analysis is not None:
            # the residual stage codes what the first stage's image misses (closed loop)
            y_detail = self.detail_analysis(x - x_hat).float() * gain[:, t:]  # N,D,h,w
            q_detail = self.quantizer.windowed(y_detail, SOFT_WINDOW)
            x_hat = x_hat + self.detail_synthesis(q_detail.values * inv_gain[:, t:]).float()
            y = torch.cat([y, y_detail], dim=1)  # N,M,h,w
            qy = WindowedQuantized(*(torch.cat(pair, dim=1) for pair in zip(qy, q_detail)))
        bits, side_bits = self.rate(y, qy)
        return {"x_hat": x_hat, "bits": bits, "side_bits": side_bits}

    def rate(self, y: torch.Tensor, qy: WindowedQuantized) -> tuple[torch.Tensor, torch.Tensor]:
        """The gained latent y (N,M,h,w) and its soft-to-hard quantization -> (bits of y and the
        side latent, bits of the side latent), each N, as the coder charges them."""
        z = self.hyper_analysis(y).float()  # N,Z,h/4,w/4
        qz = self.hyper_quantizer(z)
        z_logp = torch.log_softmax(self.hyper_logits, dim=-1) / math.log(2.0)  # Z,L_z
        z_order = self.hyper_quantizer.centers.argsort()
        z_target = F.one_hot(qz.indices, self.cfg.hyper_num_centers).float() + (qz.soft - qz.soft.detach())
        # logits are per sorted center; the quantizer's soft/indices are per parameter order
        side_bits = -(z_target * z_logp[:, z_order.argsort()][None, :, None, None, :]).sum(dim=(1, 2, 3, 4))
        hyper = self.hyper_synthesis(qz.values).float()  # N,P,h,w
        centers = self.quantizer.centers.sort().values
        bits = side_bits
        start = 0
        for group, size in enumerate(self.cfg.groups):
            decoded = qy.values[:, :start] if start else None
            mean, log_scale = self.parameters_of_group[group](hyper, decoded, qy.values[:, start:start + size])
            mean, scale = mean.float(), log_scale.float().exp().clamp_min(self.cfg.scale_min)
            symbols = qy.symbols[:, start:start + size]  # N,G,h,w sorted positions
            # Straight-through rate (Agustsson et al.): the value and the gradient to the
            # probabilities are the hard symbol's; the encoder's gradient comes through the soft
            # assignment, against the table at the window's centers (no gradient of its own).
            hard_log2 = gaussian_bin_log2_at(centers, mean, scale, symbols)  # N,G,h,w
            with torch.no_grad():
                # the soft assignment's gradient needs only roughly what the coder charges
                table = gaussian_bin_log2_window(centers, mean, scale, qy.window[:, start:start + size])
                table = table.clamp_min(-math.log2(TABLE_TOTAL))  # N,G,h,w,K
            soft = qy.soft[:, start:start + size]
            bits = bits - hard_log2.sum(dim=(1, 2, 3)) - ((soft - soft.detach()) * table).sum(dim=(1, 2, 3, 4))
            start += size
        return bits, side_bits

    # ------------------------------------------------------------------------------------------
    # Real bytes (CompressAI's compress / decompress), through the frozen integer entropy model

    @torch.no_grad()
    def frozen_tables(self, steps_per_rms: int | None = None) -> HyperpriorTables:
        """The entropy model as integers: z's tables, the parameter networks as integer networks
        (with steps_per_rms: coarser weights, imgcodec.train.integer_export), and y's tables over
        a grid of means and scales (imgcodec.hyperprior)."""
        cfg = self.cfg
        y_centers = self.quantizer.centers.detach().double().sort().values  # L
        z_centers = self.hyper_quantizer.centers.detach().double().sort().values
        z_counts = quantize_probabilities(torch.softmax(self.hyper_logits.double(), dim=-1).numpy())
        contexts = tuple(tuple(int_sequential([gp.context], steps_per_rms)) if gp.context is not None else ()
                         for gp in self.parameters_of_group)
        heads = tuple(tuple(int_sequential(list(gp.net), steps_per_rms)) for gp in self.parameters_of_group)
        spatials = tuple(tuple(int_sequential([gp.spatial], steps_per_rms)) for gp in self.parameters_of_group
                         if gp.spatial is not None)
        low, high = float(y_centers[0]), float(y_centers[-1])
        mean_grid = torch.arange(low, high + MEAN_STEP / 2, MEAN_STEP, dtype=torch.float64)  # Km
        log_scale_grid = torch.linspace(math.log(cfg.scale_min), math.log(SCALE_MAX), SCALE_CELLS, dtype=torch.float64)
        mean_edges = to_fixed(((mean_grid[1:] + mean_grid[:-1]) / 2).numpy())
        scale_edges = to_fixed(((log_scale_grid[1:] + log_scale_grid[:-1]) / 2).numpy())
        log2p = gaussian_bin_log2(y_centers, mean_grid[:, None].expand(-1, SCALE_CELLS),
                                  log_scale_grid.exp()[None, :].expand(len(mean_grid), -1))  # Km,Ks,L
        y_counts = quantize_probabilities(torch.exp2(log2p).numpy())
        fixed_centers = to_fixed(y_centers.numpy())
        grid = y_table_grid(fixed_centers, len(mean_grid), cfg.scale_min)
        return HyperpriorTables(tuple(cfg.groups), fixed_centers, to_fixed(z_centers.numpy()),
                                z_counts.astype(np.uint16), tuple(int_sequential(list(self.hyper_synthesis), steps_per_rms)),
                                contexts, heads, mean_edges, scale_edges, YTables.whole(y_counts.astype(np.uint16), grid),
                                spatials)

    @torch.no_grad()
    def symbols(self, x: torch.Tensor, level: int) -> tuple[np.ndarray, np.ndarray]:
        """x: 1,3,H,W in [0,1] (H, W multiples of 64) -> (y symbols M,h,w, z symbols Cz,h/4,w/4)
        of the sorted centers, nearest-center rounding."""
        y = self.latent(x, level)
        z = self.hyper_analysis(y).float()
        return (self.quantizer.symbols(y)[0].numpy().astype(np.int32),
                self.hyper_quantizer.symbols(z)[0].numpy().astype(np.int32))

    @torch.no_grad()
    def compress(self, x: torch.Tensor, level: int, tables: HyperpriorTables) -> bytes:
        """x: 1,3,H,W in [0,1] (H, W multiples of 64) -> the latent payload."""
        y_symbols, z_symbols = self.symbols(x, level)
        return tables.encode(y_symbols, z_symbols)

    @torch.no_grad()
    def decompress(self, payload: bytes, level: int, height: int, width: int,
                   tables: HyperpriorTables) -> torch.Tensor:
        """The payload of an H x W image (multiples of 64) -> x_hat 1,3,H,W."""
        y_symbols, _ = tables.decode(payload, height // self.cfg.downscale, width // self.cfg.downscale)
        centers = self.quantizer.centers.detach().sort().values
        y_hat = centers[torch.from_numpy(y_symbols).long()][None] * self.log_inv_gain[level].exp()[None, :, None, None]
        return self.reconstruct(y_hat)

    @torch.no_grad()
    def latent(self, x: torch.Tensor, level: int, analysed: torch.Tensor | None = None) -> torch.Tensor:
        """x: N,3,H,W in [0,1] (H, W multiples of 64) -> the gained latent N,M,h,w that nearest
        rounding codes; the residual stage's part is taken against the first stage's decoded
        image from nearest centers. `analysed`, the analysis of x (N,T,h,w, before the gains),
        saves running it again for each level of one image."""
        gain = self.log_gain[level].exp()[None, :, None, None]  # 1,M,1,1
        t = self.cfg.transform_channels
        if analysed is None:
            analysed = self.analysis(x - 0.5).float()
        y = analysed * gain[:, :t]
        if self.detail_analysis is None:
            return y
        centers = self.quantizer.centers.detach().sort().values
        first = self.first_stage(centers[self.quantizer.symbols(y)] * self.log_inv_gain[level, :t].exp()[None, :, None, None])
        return torch.cat([y, self.detail_analysis(x - first).float() * gain[:, t:]], dim=1)

    def first_stage(self, y_hat: torch.Tensor) -> torch.Tensor:
        """The first stage's T channels of the decoded latent times the inverse gains -> its image N,3,H,W."""
        return self.synthesis(y_hat).float() + 0.5

    def reconstruct(self, y_hat: torch.Tensor) -> torch.Tensor:
        """The decoded latent times the inverse gains, N,M,h,w -> x_hat N,3,H,W (both stages)."""
        t = self.cfg.transform_channels
        x_hat = self.first_stage(y_hat[:, :t])
        if self.detail_synthesis is not None:
            x_hat = x_hat + self.detail_synthesis(y_hat[:, t:]).float()
        return x_hat
