"""Trainable context prior, and its tabulation into the frozen integer tables.

A small MLP per latent channel maps the context (values of the left and top neighbours in the
same channel, with an outside-the-image flag each) plus a per-level bias to logits over the L
centers. Its inputs are discrete (symbols), so it is tabulated exactly for every possible context
and level into ``context_prior.PriorTables`` (see that module for why coding needs integers).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..context_prior import PriorTables, context_symbol_map, num_contexts, quantize_probabilities


class ContextPriorNet(nn.Module):
    """Per-channel MLP (grouped 1x1 convolutions) over the causal neighbours' center values."""

    def __init__(self, channels: int, num_centers: int, num_levels: int, hidden: int,
                 context_clip: int) -> None:
        super().__init__()
        self.channels, self.num_centers, self.hidden = channels, num_centers, hidden
        self.context_clip = context_clip
        self.context_map = context_symbol_map(num_centers, context_clip)  # validates the clip
        self.inp = nn.Conv2d(channels * 4, channels * hidden, 1, groups=channels)
        self.level_bias = nn.Embedding(num_levels, channels * hidden)
        nn.init.zeros_(self.level_bias.weight)
        self.mid = nn.Conv2d(channels * hidden, channels * hidden, 1, groups=channels)
        self.out = nn.Conv2d(channels * hidden, channels * num_centers, 1, groups=channels)

    def _logits(self, features: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """features: N,C*4,H,W grouped per channel; level: N -> logits N,C,H,W,L."""
        n, _, h, w = features.shape
        hid = self.inp(features) + self.level_bias(level)[:, :, None, None]
        hid = self.mid(F.leaky_relu(hid, 0.1))
        logits = self.out(F.leaky_relu(hid, 0.1))  # N,C*L,H,W
        return logits.view(n, self.channels, self.num_centers, h, w).permute(0, 1, 3, 4, 2)

    def clip_values(self, values: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """Clamp center values to the context clip's outermost centers (sorted `centers`), so
        the network sees exactly what the tables index: one input per context symbol."""
        mid = (self.num_centers - 1) // 2
        return values.clamp(centers[mid - self.context_clip], centers[mid + self.context_clip])

    def forward(self, values: torch.Tensor, level: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """values: N,C,H,W hard center values (no gradient needed), level: N, centers: sorted
        -> logits N,C,H,W,L."""
        values = self.clip_values(values.detach(), centers.detach())
        padded = F.pad(values, (1, 0, 1, 0))  # N,C,H+1,W+1
        outside = F.pad(torch.zeros_like(values), (1, 0, 1, 0), value=1.0)
        left, top = padded[:, :, 1:, :-1], padded[:, :, :-1, 1:]
        left_out, top_out = outside[:, :, 1:, :-1], outside[:, :, :-1, 1:]
        feats = torch.stack([left, left_out, top, top_out], dim=2)  # N,C,4,H,W
        return self._logits(feats.flatten(1, 2), level)

    def bits(self, values: torch.Tensor, soft: torch.Tensor, indices: torch.Tensor,
             level: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """Cross-entropy in bits per sample (N). The target is the hard one-hot in the forward
        pass with the soft assignment's gradient, so the rate term also pulls latents toward
        cheap centers (Agustsson et al. 2017, Sec. 3.2)."""
        logp = torch.log_softmax(self.forward(values, level, centers), dim=-1)  # N,C,H,W,L
        hard = F.one_hot(indices, self.num_centers).to(soft.dtype)
        target = hard + (soft - soft.detach())  # zero forward; the soft assignment's gradient backward
        return -(target * logp).sum(dim=(1, 2, 3, 4)) / math.log(2.0)

    @torch.no_grad()
    def tabulate(self, centers: torch.Tensor) -> PriorTables:
        """Evaluate every (level, channel, context) once in float64 and quantize to integers.
        `centers` must be sorted (symbols index the sorted centers)."""
        num = self.num_centers
        base = int(self.context_map.max() + 1)
        # One representative neighbour symbol per context symbol (the first that maps to it).
        rep = torch.from_numpy(np.array([int(np.argmax(self.context_map == b)) for b in range(base)]))
        left_sym = rep.repeat_interleave(base)  # context k = left * B + top
        top_sym = rep.repeat(base)
        centers = centers.detach().double()
        vals = torch.cat([self.clip_values(centers, centers), torch.zeros(1, dtype=torch.float64)])
        feats = torch.stack([vals[left_sym], (left_sym == num).double(),
                             vals[top_sym], (top_sym == num).double()])  # 4,K
        k = num_contexts(num, self.context_clip)
        feats = feats[None, None].expand(1, self.channels, 4, k).reshape(1, self.channels * 4, k, 1)
        net = copy.deepcopy(self).double()
        tables = []
        for level in range(self.level_bias.num_embeddings):
            logits = net._logits(feats, torch.tensor([level]))  # 1,C,K,1,L
            probs = torch.softmax(logits[0, :, :, 0, :], dim=-1).numpy()  # C,K,L
            tables.append(quantize_probabilities(probs))
        counts = np.stack(tables).astype(np.uint16)
        prior = PriorTables(counts, self.context_clip)
        prior.validate()
        return prior
