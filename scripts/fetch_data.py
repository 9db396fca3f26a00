"""Fetch natural photographs for training and validation from Debian wallpaper packages.

Sources are Debian packages of desktop wallpapers (downloaded with ``apt-get download`` and
unpacked with ``dpkg-deb -x``; nothing is installed) plus the photographs that scikit-image
bundles. The script keeps photographs (drawings, flat art and logos are dropped by a
flatness test), removes duplicate resolutions of the same picture (perceptual hash),
downscales every photo by at least 2 to wash out JPEG artefacts, and writes:

    data/train/*.png      training photos
    data/val/*.png        validation crops of 768x512 (or 512x768), never trained on
    data/manifest.csv     name, split, source package, original path, licence of the package

Usage:  python scripts/fetch_data.py [--out data] [--val-count 12]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = 200_000_000  # wallpapers reach ~25 Mpx; these are trusted packages

#: Debian packages of wallpapers and the licence their debian/copyright names for the images.
PACKAGES: dict[str, str] = {
    "plasma-workspace-wallpapers": "LGPL-3 / CC-BY-SA-3.0 / CC-BY-SA-4.0 (see debian/copyright)",
    "mate-backgrounds": "GPL-2+ / CC-BY-SA (see debian/copyright)",
    "lomiri-wallpapers-16.04": "CC-BY-SA-3.0 (see debian/copyright)",
    "lomiri-wallpapers-20.04": "CC-BY-SA-3.0 (see debian/copyright)",
    "lxqt-themes": "CC-BY-SA-3.0 / CC0 / GPL (see debian/copyright)",
}
SKIMAGE_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"]
#: Renders, paintings and vector art that the flatness test lets through (checked by eye on a
#: contact sheet of every kept file).
NOT_PHOTOS = ("/Canopee/", "/Elarun/", "/Honeywave/", "/Kay/", "/Patak/", "/SafeLanding/", "/Shell/",
              "/Volna/", "/Autumn/", "/Cascade/", "/Cluster/", "/Flow/", "/IceCold/", "/Kokkini/",
              "/Opal/", "/FlyingKonqui/", "plasma_arch", "Ubuntu-Mate", "/mate/abstract/",
              "/mate/desktop/", "origami", "triangles", "waves", "Fossa")
SKIMAGE_LICENCE = "public domain / CC0 (scikit-image data/README.txt)"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MIN_SIDE = 900  # pixels before downscaling; smaller files are previews and thumbnails
VAL_SIZE = (768, 512)


@dataclass
class Candidate:
    path: Path
    package: str
    licence: str


def download_packages(workdir: Path) -> list[Candidate]:
    """Download and unpack each wallpaper package; return every image file inside."""
    candidates: list[Candidate] = []
    debs = workdir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for package, licence in PACKAGES.items():
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True,
                       stdout=subprocess.DEVNULL)
        deb = next(debs.glob(f"{package}_*.deb"))
        root = workdir / "unpacked" / package
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        for path in sorted(root.rglob("*")):
            if (path.suffix.lower() in IMAGE_SUFFIXES and "/icons/" not in str(path)
                    and not any(pattern in str(path) for pattern in NOT_PHOTOS)):
                candidates.append(Candidate(path, package, licence))
    return candidates


def skimage_candidates() -> list[Candidate]:
    import skimage

    data_dir = Path(skimage.__file__).parent / "data"
    return [Candidate(data_dir / name, "scikit-image", SKIMAGE_LICENCE)
            for name in SKIMAGE_PHOTOS if (data_dir / name).exists()]


def flat_fraction(rgb: np.ndarray) -> float:
    """Fraction of pixels whose horizontal and vertical neighbours are identical.

    Drawings, vector art and logos have large exactly-flat areas; photographs (sensor noise,
    texture) almost never do. Measured on a 512-px-wide thumbnail.
    """
    gray = rgb.astype(np.int16).sum(axis=2)
    flat = (np.abs(np.diff(gray, axis=0))[:, :-1] == 0) & (np.abs(np.diff(gray, axis=1))[:-1] == 0)
    return float(flat.mean())


def average_hash(image: Image.Image) -> np.ndarray:
    """16x16 luminance hash, for spotting the same picture at other resolutions."""
    small = np.asarray(image.convert("L").resize((16, 16), Image.Resampling.BOX), dtype=np.float32)
    return small > small.mean()


def downscale(image: Image.Image) -> Image.Image:
    """Downscale by an integer factor >= 2 so the short side lands near 700-1200 px."""
    short = min(image.size)
    factor = max(2, round(short / 1000))
    size = (image.width // factor, image.height // factor)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def center_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    w, h = size if image.width >= image.height else size[::-1]
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


def select_photos(candidates: list[Candidate], max_flat: float) -> list[tuple[str, Candidate, Image.Image]]:
    """Keep photographs, drop duplicates (keep the largest), return (name, source, downscaled)."""
    kept: list[tuple[Candidate, Image.Image, np.ndarray, int]] = []
    for cand in candidates:
        try:
            with Image.open(cand.path) as im:
                if min(im.size) < MIN_SIDE and cand.package != "scikit-image":
                    continue
                if im.mode in ("RGBA", "LA", "P") and im.convert("RGBA").getextrema()[3][0] < 255:
                    continue  # transparent art, not a photo
                rgb = im.convert("RGB")
        except (OSError, ValueError):
            continue
        thumb = rgb.resize((512, max(1, round(512 * rgb.height / rgb.width))), Image.Resampling.BOX)
        if flat_fraction(np.asarray(thumb)) > max_flat:
            continue
        hsh = average_hash(rgb)
        area = rgb.width * rgb.height
        duplicate = next((i for i, k in enumerate(kept) if (k[2] != hsh).mean() < 0.08), None)
        if duplicate is not None:
            if kept[duplicate][3] >= area:
                continue
            kept.pop(duplicate)
        kept.append((cand, rgb, hsh, area))
    photos = []
    for cand, rgb, _, _ in kept:
        stem = hashlib.sha1(str(cand.path).encode()).hexdigest()[:8]
        # Plasma names files by resolution; its picture's name is the folder above contents/.
        title = cand.path.parts[-4] if "contents" in cand.path.parts else cand.path.stem
        name = f"{cand.package}-{title}-{stem}".replace(" ", "_")
        photos.append((name, cand, rgb if cand.package == "scikit-image" else downscale(rgb)))
    return photos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument("--val-count", type=int, default=12)
    parser.add_argument("--max-flat", type=float, default=0.10,
                        help="drop images with more exactly-flat pixels than this fraction")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        candidates = download_packages(Path(tmp)) + skimage_candidates()
        photos = select_photos(candidates, args.max_flat)
        # Fixed split: the validation photos are those whose name hashes lowest, among photos
        # large enough for a 768x512 crop. Stable as long as the packages do not change.
        ranked = sorted(photos, key=lambda p: hashlib.sha256(p[0].encode()).hexdigest())
        val_names = {n for n, _, im in ranked if min(im.size) >= 512 and max(im.size) >= 768}
        val_names = set([n for n, _, _ in ranked if n in val_names][: args.val_count])
        for split in ("train", "val"):
            (args.out / split).mkdir(parents=True, exist_ok=True)
        rows = []
        for name, cand, image in photos:
            split = "val" if name in val_names else "train"
            if split == "val":
                image = center_crop(image, VAL_SIZE)
            image.save(args.out / split / f"{name}.png", optimize=False, compress_level=1)
            rows.append({"name": name, "split": split, "source": cand.package,
                         "original": str(cand.path).split("unpacked/")[-1],
                         "width": image.width, "height": image.height, "licence": cand.licence})
    with open(args.out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    n_val = sum(r["split"] == "val" for r in rows)
    print(f"{len(rows)} photos: {len(rows) - n_val} train, {n_val} val -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
