"""Training crops cut on the GPU that trains (scripts/train.py --device cuda), apart from
imgcodec.train.data so that loading photos needs no torch."""
from __future__ import annotations

import numpy as np
import torch


class DeviceCropSampler:
    """CropSampler's crops cut where the model trains (a GPU): the photos go to the device once
    and every batch is made there, so no crop crosses from the host on a step. The same draw:
    photos by area, random positions and flips, flat crops thinned (by rejection, in rounds of
    candidates checked together), and with colour_augment the same channel orders and saturation
    stretch. Its random stream is its own (seeded), not CropSampler's."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int, device: torch.device | str,
                 flat_activity: float = 0.0, colour_augment: bool = False) -> None:
        usable = [im for im in images if min(im.shape[:2]) >= crop]
        if not usable:
            raise ValueError(f"no training image is at least {crop} pixels on its short side")
        if flat_activity < 0:
            raise ValueError(f"flat_activity must be >= 0, not {flat_activity}")
        self.crop, self.flat_activity, self.colour_augment = crop, flat_activity, colour_augment
        self.device = torch.device(device)
        self.images = [torch.from_numpy(np.ascontiguousarray(im)).to(self.device).permute(2, 0, 1)
                       for im in usable]  # each 3,H,W uint8
        self.sizes = [(im.shape[0], im.shape[1]) for im in usable]
        areas = torch.tensor([h * w for h, w in self.sizes], dtype=torch.float64)
        self.weights = (areas / areas.sum()).to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def _uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator, device=self.device)

    def _candidates(self, count: int) -> torch.Tensor:
        """count random crops, N,3,crop,crop uint8."""
        which = torch.multinomial(self.weights, count, replacement=True, generator=self.generator).tolist()
        spots = self._uniform(count, 2).tolist()
        crops = []
        for index, (u, v) in zip(which, spots):
            height, width = self.sizes[index]
            top, left = int(u * (height - self.crop + 1)), int(v * (width - self.crop + 1))
            crops.append(self.images[index][:, top:top + self.crop, left:left + self.crop])
        return torch.stack(crops)

    def _accepted(self, crops: torch.Tensor) -> torch.Tensor:
        """Which crops to keep (N bool): activity() of each, vectorised."""
        if self.flat_activity == 0:
            return torch.ones(crops.shape[0], dtype=torch.bool, device=self.device)
        grey = crops.float().mean(dim=1)  # N,H,W
        level = ((grey[:, 1:] - grey[:, :-1]).abs().mean(dim=(1, 2))
                 + (grey[:, :, 1:] - grey[:, :, :-1]).abs().mean(dim=(1, 2)))  # N
        return (level >= self.flat_activity) | (self._uniform(crops.shape[0]) < level / self.flat_activity)

    def batch(self, size: int) -> torch.Tensor:
        """size random crops on the device, N,3,crop,crop float32 in [0, 1]."""
        kept: list[torch.Tensor] = []
        found = 0
        for _ in range(1000):  # a perfectly flat set would never be accepted: stop rejecting
            candidates = self._candidates(2 * (size - found))
            accepted = candidates[self._accepted(candidates)]
            kept.append(accepted)
            found += accepted.shape[0]
            if found >= size:
                break
        else:
            kept.append(self._candidates(size - found))
        crops = torch.cat(kept)[:size]  # N,3,H,W uint8
        flip = self._uniform(size) < 0.5
        crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops)
        values = crops.float()
        if self.colour_augment:
            order = torch.argsort(self._uniform(size, 3), dim=1)  # N,3: a random channel order each
            values = values.gather(1, order[:, :, None, None].expand_as(values))
            stretch = torch.where(self._uniform(size) < 0.5, 1.0 + 0.5 * self._uniform(size),
                                  torch.ones(size, device=self.device))  # half the crops, 1-1.5x
            grey = values.mean(dim=1, keepdim=True)
            values = (grey + stretch[:, None, None, None] * (values - grey)).round().clamp(0, 255)
        return values / 255.0
