"""Training and validation photos: read once into memory, sampled as random crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def image_names(folder: Path) -> list[str]:
    """The file names load_images reads, in its order (sorted by name)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(folder: Path) -> list[np.ndarray]:
    """Every PNG/JPEG/WebP in folder as H,W,3 uint8 arrays (sorted by name for reproducibility).
    WebP is there for lossless training tiles (pack_tiles): 2.9x smaller than raw crops."""
    names = image_names(folder)
    if not names:
        raise FileNotFoundError(f"no images in {folder}; run scripts/fetch_data.py first")
    return [np.asarray(Image.open(Path(folder) / name).convert("RGB")) for name in names]


def activity(patch: np.ndarray) -> float:
    """Mean absolute difference of neighbouring pixels (down plus right) of the channel mean, in
    8-bit levels: about 2 on sky or a plain wall, 15-30 on foliage, fabric or a city."""
    gray = patch.astype(np.float32).mean(axis=-1)  # H,W
    return float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())


class CropSampler:
    """Random crops with random horizontal flips (and, with colour_augment, random channel orders
    and saturation); the RNG state is saved in checkpoints.

    With flat_activity > 0, a crop whose activity() is below it is kept only with probability
    activity / flat_activity (rejection sampling), so that training sees texture as often as users'
    photos have it: 30 % of data/train's 256x256 crops lie below 4, against 6 % of data/detail's
    (scripts/crop_activity.py).
    """

    def __init__(self, images: list[np.ndarray], crop: int, seed: int, flat_activity: float = 0.0,
                 colour_augment: bool = False) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop} pixels on its short side")
        if flat_activity < 0:
            raise ValueError(f"flat_activity must be >= 0, not {flat_activity}")
        self.crop = crop
        self.flat_activity = flat_activity
        self.colour_augment = colour_augment
        self.rng = np.random.default_rng(seed)
        # Sample images proportionally to area, so every pixel is equally likely.
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()

    def _crop(self) -> np.ndarray:
        im = self.images[self.rng.choice(len(self.images), p=self.weights)]
        top = self.rng.integers(0, im.shape[0] - self.crop + 1)
        left = self.rng.integers(0, im.shape[1] - self.crop + 1)
        return im[top:top + self.crop, left:left + self.crop]

    def _accepted(self, patch: np.ndarray) -> bool:
        if self.flat_activity == 0:
            return True
        level = activity(patch)
        return level >= self.flat_activity or self.rng.random() < level / self.flat_activity

    def batch(self, size: int) -> np.ndarray:
        """size random crops, N,crop,crop,3 uint8."""
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)  # N,H,W,3
        for k in range(size):
            # A perfectly flat photo would never be accepted: give up on rejecting after 1,000 tries.
            for _ in range(1000):
                patch = self._crop()
                if self._accepted(patch):
                    break
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[k] = self._recoloured(patch) if self.colour_augment else patch
        return out

    def _recoloured(self, patch: np.ndarray) -> np.ndarray:
        """The crop with its channels in a random order (each of the 6 alike) and, half the time,
        its saturation stretched by 1-1.5x about each pixel's grey (the channels' mean), clipped
        to 0..255. data/train is half Endless Sky landscapes in earth tones and blue skies:
        mean saturation (max - min) / max 0.34 against 0.48 on data/detail, where shae-v9
        trailed most on saturated greens, cyans and pinks (docs/experiments/colour-augment)."""
        patch = patch[:, :, self.rng.permutation(3)]
        if self.rng.random() < 0.5:
            values = patch.astype(np.float32)
            grey = values.mean(axis=2, keepdims=True)
            stretched = grey + self.rng.uniform(1.0, 1.5) * (values - grey)
            patch = np.clip(np.rint(stretched), 0, 255).astype(np.uint8)
        return patch


def load_crops(path: Path) -> list[np.ndarray]:
    """A packed crops file (scripts/pack_crops.py: N,S,S,3 uint8 .npy) as a list of photos."""
    crops = np.load(path)
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"{path} is not an N,S,S,3 uint8 array of crops")
    return list(crops)


def pack_crops(images: list[np.ndarray], size: int, count: int, seed: int = 0) -> np.ndarray:
    """`count` random size x size crops of the photos (sampled by area), N,size,size,3 uint8: the
    training set in one file that a GPU machine can take along."""
    sampler = CropSampler(images, size, seed)
    return np.concatenate([sampler.batch(min(64, count - k)) for k in range(0, count, 64)])


def pack_tiles(images: list[np.ndarray], size: int, count: int, folder: Path, seed: int = 0,
               flat_activity: float = 0.0) -> int:
    """`count` random size x size tiles of the photos (CropSampler, flat ones thinned as in
    training) written as lossless WebP files into folder, for a GPU machine that can take along
    only some tens of MB: WebP lossless stores these photos in 0.36 of their raw bytes, so the
    same bytes carry 2.9x the pixels of a packed .npy. Returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    tiles = CropSampler(images, size, seed, flat_activity).batch(count)  # N,S,S,3
    written = 0
    for k, tile in enumerate(tiles):
        path = folder / f"tile-{k:04d}.webp"
        Image.fromarray(tile).save(path, "WEBP", lossless=True, method=2, quality=50)
        written += path.stat().st_size
    return written


def random_crops(photos: list[np.ndarray], count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """`count` size x size crops, from photos taken in turn, at random positions (seeded)."""
    rng = np.random.default_rng(seed)
    usable = [p for p in photos if min(p.shape[:2]) >= size]
    if not usable:
        raise ValueError(f"no training photo is {size} pixels on its shorter side")
    crops = []
    for i in range(count):
        photo = usable[i % len(usable)]
        top = int(rng.integers(0, photo.shape[0] - size + 1))
        left = int(rng.integers(0, photo.shape[1] - size + 1))
        crops.append(np.array(photo[top:top + size, left:left + size, :3]))
    return crops
