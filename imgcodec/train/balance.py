"""Per-level loss weights that give every level of a variable-rate model a like share of training.

One model serves every level (gain vectors, Cui et al., CVPR 2021), and training draws a level per
crop and minimises lambda_l * D + R for it. The levels' losses differ by an order of magnitude
(shae-v9's running means on its training crops: 0.40 at level 1, 4.6 at level 10;
docs/experiments/level-balance), so in the sum the transforms they share are pulled mostly by
the top levels. Dividing each level's loss
by a running mean of that level's own loss (a plain form of multi-task loss normalisation) gives
every level about the same pull. Scaling one level's loss does not move that level's own
rate-distortion optimum (its lambda still sets the trade-off); it changes only how the shared
weights compromise between levels.
"""
from __future__ import annotations

import torch

#: Decay of each level's running mean, per crop drawn at that level: with batches of 2 crops and
#: 10 levels a level is drawn every fifth step, so the mean spans about 500 steps.
DECAY = 0.99


class LevelBalance:
    """Running mean loss per level, and the weights mean(running) / running[level]."""

    def __init__(self, num_levels: int) -> None:
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, not {num_levels}")
        self.running = torch.full((num_levels,), float("nan"), dtype=torch.float64)

    def weights(self, level: torch.Tensor) -> torch.Tensor:
        """Weights for the crops' levels (N int) -> N float32: the mean running loss over the levels
        seen so far divided by the crop's level's; 1 for a level not seen yet."""
        seen = ~torch.isnan(self.running)
        if not bool(seen.any()):
            return torch.ones(level.shape, dtype=torch.float32, device=level.device)
        per_level = torch.where(seen, self.running[seen].mean() / self.running, torch.ones_like(self.running))
        return per_level.float().to(level.device)[level]

    def update(self, level: torch.Tensor, loss: torch.Tensor) -> None:
        """After a step: each crop's unweighted loss (N) into its level's running mean (the first
        observation of a level sets it)."""
        for lv, value in zip(level.tolist(), loss.detach().double().cpu().tolist()):
            old = float(self.running[lv])
            self.running[lv] = value if old != old else DECAY * old + (1 - DECAY) * value  # old != old: NaN

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"running": self.running.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        running = state["running"]
        if running.shape != self.running.shape:
            raise ValueError(f"the saved balance has {running.shape[0]} levels, the model {self.running.shape[0]}")
        self.running = running.to(torch.float64).clone()
