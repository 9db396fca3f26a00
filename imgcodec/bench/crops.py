"""A picture to look at: one photo's crop coded by every codec at the same file size.

`shaec bench DIR --crops` takes the first photo of DIR, encodes it with shaec at its default
quality, finds for every other codec the quality whose file is closest to that size without
exceeding it (or the smallest it makes), and writes crops.png: the original and each decode of
the same square side by side, each labelled with codec, quality, bytes and PSNR.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..metrics import psnr_rgb
from .codecs import BenchCodec, Quality

CROP = 256  # side of each tile, in pixels of the photo (shown at 1:1)
LABEL = 34  # label band under each tile


@dataclass(frozen=True)
class Tile:
    label: str
    pixels: np.ndarray  # CROP,CROP,3 uint8


def _detail_window(rgb: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the side x side window with the most fine detail (mean absolute
    Laplacian of the luma, on a 32-px grid), where codecs differ most."""
    luma = rgb.astype(np.float32).mean(axis=2)
    lap = np.abs(4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:])
    best, corner = -1.0, (0, 0)
    for top in range(0, max(1, rgb.shape[0] - side + 1), 32):
        for left in range(0, max(1, rgb.shape[1] - side + 1), 32):
            score = float(lap[top:top + side - 2, left:left + side - 2].mean())
            if score > best:
                best, corner = score, (top, left)
    return corner


def matched_tiles(rgb: np.ndarray, shaec: BenchCodec, others: Sequence[BenchCodec]) -> list[Tile]:
    """The original and every codec's decode at (at most) shaec's file size, cropped alike."""
    from ..codec import get_codec

    height, width = rgb.shape[:2]
    side = min(CROP, height, width)
    top, left = _detail_window(rgb, side)

    def crop(image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[top:top + side, left:left + side])

    quality: Quality = get_codec().info.default_quality
    target = shaec.encode(rgb, quality)
    decoded = shaec.decode(target, width, height)
    tiles = [Tile("original", crop(rgb)),
             Tile(f"shaec q{quality} {len(target)} B {psnr_rgb(rgb, decoded):.2f} dB", crop(decoded))]
    for codec in others:
        sized = [(q, codec.encode(rgb, q)) for q in codec.qualities()]
        fitting = [(q, d) for q, d in sized if len(d) <= len(target)]
        q, data = max(fitting, key=lambda p: len(p[1])) if fitting else min(sized, key=lambda p: len(p[1]))
        image = codec.decode(data, width, height)
        tiles.append(Tile(f"{codec.name} q{q} {len(data)} B {psnr_rgb(rgb, image):.2f} dB", crop(image)))
    return tiles


def write_crops(tiles: Sequence[Tile], path: Path, title: str) -> Path:
    """Tiles side by side with their labels under them, as a PNG."""
    side = tiles[0].pixels.shape[0]
    sheet = Image.new("RGB", (len(tiles) * (side + 8) + 8, side + LABEL + 30), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 6), title, fill="black")
    for i, tile in enumerate(tiles):
        x = 8 + i * (side + 8)
        sheet.paste(Image.fromarray(tile.pixels), (x, 24))
        name, _, rest = tile.label.partition(" ")
        draw.text((x, 28 + side), name, fill="black")
        draw.text((x, 28 + side + 14), rest, fill="black")
    sheet.save(path)
    return path
