"""Differentiable lookups of many values in a small 1-D table (centers, bin edges).

``table[index]`` differentiates through ``index_put_(accumulate=True)``, which on a GPU runs a
sort-based kernel over every index: with tables of 83 centers and 84 bin edges read at 1.6
million latent values (each with a window of 7 centers) in a batch of 32 crops of 256x256, that
kernel took 96 % of a shae-v9 training step on an H200 (docs/training.md, Training
on a GPU). ``index_select`` gives the same values and differentiates through ``index_add_``,
which adds with atomics instead.
"""
from __future__ import annotations

import torch


def take(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a 1-D table and an integer index of any shape, with a fast backward."""
    return table.index_select(0, index.reshape(-1)).view(index.shape)
