"""Differentiable lookups of many values in a small 1-D table (centers, bin edges).

``table[index]`` differentiates through ``index_put_(accumulate=True)``, which on a GPU runs a
sort-based kernel over every index: with an 84-entry table read at 1.5 million places per
batch, that kernel took 96 % of a shae-v9 training step on an H200 (docs/training.md, Training
on a GPU). ``index_select`` gives the same values and differentiates through ``index_add_``,
which adds with atomics instead.
"""
from __future__ import annotations

import torch


def take(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a 1-D table and an integer index of any shape, with a fast backward."""
    return table.index_select(0, index.reshape(-1)).view(index.shape)
