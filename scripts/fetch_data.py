"""Fetch natural photographs for training and validation from Debian packages.

Sources are Debian (bookworm) packages that ship photographs: desktop wallpapers, a few games
and educational programs, and artwork of other programs (downloaded with ``apt-get download``
and unpacked with ``dpkg-deb -x``; nothing is installed). The script keeps photographs
(drawings, flat art and logos are dropped by a flatness test plus an explicit deny list, both
checked by eye on contact sheets), removes duplicate resolutions of the same picture
(correlation of small thumbnails), downscales every photo whose short side allows it by an
integer factor of at least 2 (to wash out compression artefacts; photos with a 512-1023 px
short side are kept at their own size only from sources marked native_ok, and only when clean:
lossless, or JPEG of quality >= 90), and writes:

    OUT/train/*.png      training photos
    OUT/val/*.png        768x512 (or 512x768) centre crops of the pinned validation pictures
    OUT/manifest.csv     one row per photo: name, split, source package and version, original
                         path inside the package, size, downscale factor, licence

Names are ``{package}-{title}`` (title: the wallpaper folder for Plasma, else the file stem),
so they and the validation split are the same on every run. See docs/data.md.

Usage:  python scripts/fetch_data.py [--out data] [--deb-cache DIR]
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import re
import struct
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

Image.MAX_IMAGE_PIXELS = 200_000_000  # wallpapers reach ~25 Mpx; these are trusted packages


@dataclass(frozen=True)
class Source:
    """One Debian package and which of its files may hold photographs."""

    package: str
    #: Licence of the package's images as its debian/copyright states it; used where no more
    #: specific per-file licence is found (see file_licence).
    licence: str
    #: fnmatch patterns on the path inside the package ("*" also matches "/").
    include: tuple[str, ...] = ("*",)
    #: Photos whose short side is 512..1023 px may be kept at their own size when they are
    #: clean (lossless, or JPEG of estimated quality >= MIN_NATIVE_JPEG_QUALITY).
    native_ok: bool = False
    #: Every file the include patterns select was looked at and is a photograph: skip the
    #: flatness test, which also rejects photos with smooth skies or blurred backgrounds.
    all_photos: bool = False


SOURCES: tuple[Source, ...] = (
    Source("plasma-workspace-wallpapers", "GPL-2+ (debian/copyright Files: *); each wallpaper's "
           "metadata.json: LGPL-3 or CC-BY-SA-4.0"),
    Source("mate-backgrounds", "GPL-2+ / CC-BY-SA-4.0 (per file, debian/copyright)"),
    Source("lomiri-wallpapers-16.04", "CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0 (per file, debian/copyright)"),
    Source("lomiri-wallpapers-20.04", "CC-BY-SA-3.0 (per file, debian/copyright)"),
    Source("lxqt-themes", "CC-BY-SA-3.0 (usr/share/lxqt/wallpapers/License; debian/copyright "
           "Files: * says LGPL-2.1+)"),
    # GCompris keeps its pictures in Qt resource files (.rcc); they are unpacked to "<file>.rcc.d/".
    # The erase activity's animal photos and the clickgame's underwater photos are 1440-1920 px
    # wide; each resource folder has a README giving every file's author and licence.
    Source("gcompris-qt-data", "GPL-3+ package; photos CC-BY-SA-4.0 / CC-BY / CC0 / public domain "
           "(per-file, resource README)",
           include=("*.rcc.d/*/activities/erase/resource/*.webp",
                    "*.rcc.d/*/activities/clickgame/resource/sea*.webp"), all_photos=True),
    # Palapeli's bundled jigsaw puzzles; each .desktop beside the picture names its licence.
    Source("palapeli-data", "GPL-2+ package; pictures per .desktop (public domain / GFDL)",
           include=("usr/share/palapeli/collection/*.jpg",), all_photos=True),
    # Endless Sky's landing-scene photographs (the @2x versions, 1440x720, used at their size).
    Source("endless-sky-high-dpi", "public domain / CC-BY-SA-3.0 / CC-BY-SA-4.0 (images/land/*, "
           "see debian/copyright)", include=("*/images/land/*@2x.jpg",), native_ok=True,
           all_photos=True),
    Source("sddm-theme-maldives", "CC-BY-3.0 (background.jpg, Nevit Dilmen, debian/copyright)",
           include=("usr/share/sddm/themes/maldives/background.jpg",), all_photos=True),
    Source("digikam-data", "GPL-2+ (package default of debian/copyright; the image is not itemised)",
           include=("usr/share/digikam/about/images/body-background.jpg",), all_photos=True),
    Source("tuxpaint-data", "GPL-2+ (debian/copyright Files: *)",
           include=("usr/share/tuxpaint/templates/*.jpg",), native_ok=True, all_photos=True),
    Source("scribus-template", "public-domain (br2 template by Riku Leino, debian/copyright)",
           include=("usr/share/scribus/templates/br2/*.jpg",), native_ok=True, all_photos=True),
)

#: The validation pictures, as (package, title). Pinned: never trained on, same on every run.
VAL_PICTURES: tuple[tuple[str, str], ...] = (
    ("plasma-workspace-wallpapers", "BytheWater"),
    ("plasma-workspace-wallpapers", "EveningGlow"),
    ("mate-backgrounds", "Blinds"),
    ("mate-backgrounds", "Garden"),
    ("mate-backgrounds", "RainDrops"),
    ("mate-backgrounds", "Storm"),
    ("mate-backgrounds", "YellowFlower"),
    ("lomiri-wallpapers-16.04", "Dragonfly_by_Bolly"),
    ("lomiri-wallpapers-16.04", "analogpattern_by_Peter_Nerlich"),
    ("lxqt-themes", "Valendas"),
    ("lxqt-themes", "after-the-rain"),
    ("lxqt-themes", "cloud"),
)

#: Renders, paintings, vector art and processed space imagery that the flatness test lets
#: through (checked by eye on a contact sheet of every kept file).
NOT_PHOTOS = ("/Canopee/", "/Elarun/", "/Honeywave/", "/Kay/", "/Patak/", "/SafeLanding/", "/Shell/",
              "/Volna/", "/Autumn/", "/Cascade/", "/Cluster/", "/Flow/", "/IceCold/", "/Kokkini/",
              "/Opal/", "/FlyingKonqui/", "plasma_arch", "Ubuntu-Mate", "/mate/abstract/",
              "/mate/desktop/", "origami", "triangles", "waves", "Fossa",
              "/land/nasa")  # Endless Sky: Juno's false-colour pictures of Jupiter
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MIN_SIDE = 512  # short side of every kept photo, after downscaling
MIN_NATIVE_JPEG_QUALITY = 90  # a JPEG kept undownscaled must be at least this clean
VAL_SIZE = (768, 512)
#: The detail set (detail_names): native-resolution crops of photos never trained on.
DETAIL_COUNT = 24
DETAIL_PER_PACKAGE = 10
SPLITS = ("train", "val", "detail")


@dataclass
class Candidate:
    path: Path          # file on disk
    source: Source
    version: str        # Debian version of the package
    original: str       # path inside the package


@dataclass
class Photo:
    name: str
    title: str
    cand: Candidate
    image: Image.Image  # downscaled (or native) RGB
    factor: int         # 1 = kept at its own size
    licence: str
    native: Image.Image  # centre crop of VAL_SIZE at the original's own resolution (the detail set's)


# --------------------------------------------------------------------------- download/unpack

def read_rcc(blob: bytes) -> dict[str, bytes]:
    """Files of a Qt resource (.rcc) file, by path; zstd-compressed entries are skipped."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 22 if version >= 2 else 14
    files: dict[str, bytes] = {}

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset:names + offset + 2])
        start = names + offset + 6  # length (2), hash (4), UTF-16 name
        return blob[start:start + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[node:node + 6])
        name = name_at(name_offset) if index else ""
        if flags & 0x02:  # directory
            count, first = struct.unpack(">II", blob[node + 6:node + 14])
            for child in range(first, first + count):
                walk(child, f"{prefix}{name}/")
            return
        (offset,) = struct.unpack(">I", blob[node + 10:node + 14])
        (size,) = struct.unpack(">I", blob[data + offset:data + offset + 4])
        payload = blob[data + offset + 4:data + offset + 4 + size]
        if flags & 0x04:  # zstd
            return
        if flags & 0x01:  # zlib, after a 4-byte uncompressed size
            payload = zlib.decompress(payload[4:])
        files[f"{prefix}{name}".lstrip("/")] = payload

    walk(0, "")
    return files


def unpack_rcc_files(root: Path) -> None:
    """Write the images and READMEs of every .rcc under root to '<file>.rcc.d/'."""
    for rcc in sorted(root.rglob("*.rcc")):
        for inner, payload in read_rcc(rcc.read_bytes()).items():
            if inner.lower().endswith(IMAGE_SUFFIXES) or inner.endswith("/README"):
                target = rcc.with_name(rcc.name + ".d") / inner
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(payload)


def fetch_package(package: str, debs: Path) -> Path:
    """The package's .deb in debs, downloaded unless one is already there."""
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True,
                       stdout=subprocess.DEVNULL)
        found = sorted(debs.glob(f"{package}_*.deb"))
    return found[-1]


def download_packages(workdir: Path, debs: Path) -> list[Candidate]:
    """Download and unpack each source package; return its image files that may be photos."""
    candidates: list[Candidate] = []
    for source in SOURCES:
        deb = fetch_package(source.package, debs)
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        root = workdir / "unpacked" / source.package
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        unpack_rcc_files(root)
        for path in sorted(root.rglob("*")):
            inner = path.relative_to(root).as_posix()
            if (path.suffix.lower() in IMAGE_SUFFIXES and "/icons/" not in inner
                    and any(fnmatch.fnmatchcase(inner, pattern) for pattern in source.include)
                    and not any(pattern in f"/{inner}" for pattern in NOT_PHOTOS)):
                candidates.append(Candidate(path, source, version, inner))
    return candidates


# --------------------------------------------------------------------------- licences

def _dep5_stanzas(text: str) -> list[tuple[list[str], str]]:
    """(file patterns, licence short name) of each Files stanza of a DEP-5 copyright file."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields and "license" in fields:
            licence = fields["license"].splitlines()[0].strip()
            stanzas.append((fields["files"].split(), licence))
    return stanzas


def dep5_licence(copyright_file: Path, inner: str) -> str | None:
    """Licence of the last stanza that names this file (not the catch-all 'Files: *')."""
    try:
        text = copyright_file.read_text(errors="replace")
    except OSError:
        return None
    if not text.lstrip().startswith("Format:"):
        return None
    found = None
    for patterns, licence in _dep5_stanzas(text):
        for pattern in patterns:
            # Patterns are paths in the source tree, which the .deb installs elsewhere: match
            # them as a path suffix, or by file name where they name one exact file.
            last = pattern.rsplit("/", 1)[-1]
            if pattern != "*" and (fnmatch.fnmatchcase(inner, pattern)
                                   or fnmatch.fnmatchcase(inner, "*/" + pattern)
                                   or (not any(c in last for c in "*?[")
                                       and last == inner.rsplit("/", 1)[-1])):
                found = licence
    return found


def readme_licence(image: Path) -> str | None:
    """Licence that a GCompris resource README (blocks of Files:/License:) gives the file."""
    readme = image.parent / "README"
    if not readme.exists():
        return None
    for block in re.split(r"\n\s*\n", readme.read_text(errors="replace")):
        licence, files, in_files = None, [], False
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("License", "Copyright", "Source", "Comments", "Files"):
                in_files = key.strip() == "Files"
                if key.strip() == "License":
                    licence = value.strip()
                if in_files:
                    files += value.split()
            elif in_files:
                files += line.split()
        if licence and image.name in files:
            return licence
    return None


def desktop_licence(image: Path) -> str | None:
    """Licence named by the Palapeli .desktop file beside the picture."""
    desktop = image.with_suffix(".desktop")
    if desktop.exists():
        for line in desktop.read_text(errors="replace").splitlines():
            if line.startswith("X-KDE-PluginInfo-License="):
                return line.split("=", 1)[1].strip()
    return None


def plasma_licence(image: Path) -> str | None:
    """Licence in the metadata.json of the Plasma wallpaper folder holding the picture."""
    if "contents" not in image.parts:
        return None
    folder = Path(*image.parts[: image.parts.index("contents")])
    try:
        meta = json.loads((folder / "metadata.json").read_text())
    except (OSError, ValueError):
        return None
    licence = meta.get("KPlugin", {}).get("License")
    return {"LGPLv3": "LGPL-3"}.get(licence, licence) if licence else None


def file_licence(cand: Candidate) -> str:
    """The most specific licence the package states for this file, else the package's."""
    root = Path(str(cand.path)[: -len(cand.original)])
    copyright_file = root / "usr/share/doc" / cand.source.package / "copyright"
    specific = (readme_licence(cand.path) or desktop_licence(cand.path) or plasma_licence(cand.path)
                or dep5_licence(copyright_file, cand.original))
    if specific:  # one spelling per licence
        specific = {"public domain": "public-domain", "gnu-fdl": "GFDL"}.get(specific.lower(), specific)
    return specific if specific else cand.source.licence


# --------------------------------------------------------------------------- image tests

def flat_fraction(rgb: np.ndarray) -> float:
    """Fraction of pixels whose horizontal and vertical neighbours are identical.

    Drawings, vector art and logos have large exactly-flat areas; photographs (sensor noise,
    texture) almost never do. Measured on a 512-px-wide thumbnail.
    """
    gray = rgb.astype(np.int16).sum(axis=2)
    flat = (np.abs(np.diff(gray, axis=0))[:, :-1] == 0) & (np.abs(np.diff(gray, axis=1))[:-1] == 0)
    return float(flat.mean())


def fingerprint(image: Image.Image) -> np.ndarray:
    """32x32 luminance thumbnail, zero mean and unit variance, for spotting the same picture
    at other resolutions (aspect ratio ignored)."""
    small = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    return ((small - small.mean()) / (small.std() + 1e-6)).ravel()


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Correlation of the fingerprints, and agreement of their 16x16 above-mean hashes.

    Resolutions of one picture correlate at > 0.99; different landscapes of similar layout
    (sky above, land below) reach ~0.9, which a hash alone took for duplicates.
    """
    hash_a = a.reshape(16, 2, 16, 2).mean(axis=(1, 3)) > 0
    hash_b = b.reshape(16, 2, 16, 2).mean(axis=(1, 3)) > 0
    return float(a @ b) / a.size > 0.95 and (hash_a != hash_b).mean() < 0.08


#: IJG's reference luminance quantisation table (quality 50), in natural order.
_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                      14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                      18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                      49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


def jpeg_quality(image: Image.Image) -> int | None:
    """IJG-equivalent quality of a JPEG, estimated from its luminance table (None: not JPEG)."""
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or not tables:
        return None
    scale = 100.0 * np.sum(np.asarray(tables[0], dtype=np.float64)) / _IJG_LUMA.sum()
    return round(100 - scale / 2 if scale <= 100 else 5000 / scale)


def is_lossless(image: Image.Image, path: Path) -> bool:
    if image.format == "PNG":
        return True
    if image.format == "WEBP":
        with open(path, "rb") as fh:
            return b"VP8L" in fh.read(64)
    return False


def scale_factor(image: Image.Image, cand: Candidate) -> int | None:
    """Integer downscale factor for this photo, 1 to keep it as it is, None to drop it."""
    short = min(image.size)
    if short >= 2 * MIN_SIDE:
        return max(2, round(short / 1000))  # short side lands near 700-1200 px
    if short >= MIN_SIDE and cand.source.native_ok:
        quality = jpeg_quality(image)
        if is_lossless(image, cand.path) or (quality is not None
                                            and quality >= MIN_NATIVE_JPEG_QUALITY):
            return 1
    return None


def downscale(image: Image.Image, factor: int) -> Image.Image:
    if factor == 1:
        return image
    size = (image.width // factor, image.height // factor)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def center_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    w, h = size if image.width >= image.height else size[::-1]
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


def picture_title(cand: Candidate) -> str:
    """Plasma names files by resolution; its picture's name is the folder above contents/."""
    parts = Path(cand.original).parts
    title = parts[parts.index("contents") - 1] if "contents" in parts else Path(cand.original).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", title)


# --------------------------------------------------------------------------- selection

def select_photos(candidates: list[Candidate], max_flat: float) -> list[Photo]:
    """Keep photographs, drop duplicates (keep the largest original), name them."""
    kept: list[tuple[Candidate, Image.Image, int, np.ndarray, int]] = []
    for cand in candidates:
        try:
            with Image.open(cand.path) as im:
                if im.mode in ("RGBA", "LA", "P", "PA") and im.convert("RGBA").getextrema()[3][0] < 255:
                    continue  # transparent art, not a photo
                factor = scale_factor(im, cand)
                if factor is None:
                    continue  # too small, or too small to downscale and not clean enough
                rgb = ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, ValueError, SyntaxError):
            continue
        thumb = rgb.resize((512, max(1, round(512 * rgb.height / rgb.width))), Image.Resampling.BOX)
        if not cand.source.all_photos and flat_fraction(np.asarray(thumb)) > max_flat:
            continue
        fprint = fingerprint(rgb)
        area = rgb.width * rgb.height
        duplicate = next((i for i, k in enumerate(kept) if same_picture(k[3], fprint)), None)
        if duplicate is not None:
            other = kept[duplicate][0]
            if (other.source, picture_title(other)) != (cand.source, picture_title(cand)):
                print(f"duplicate: {cand.source.package}/{cand.original} ~ "
                      f"{other.source.package}/{other.original}", file=sys.stderr)
            if kept[duplicate][4] >= area:
                continue
            kept.pop(duplicate)
        native = center_crop(rgb, VAL_SIZE) if min(rgb.size) >= min(VAL_SIZE) else rgb
        kept.append((cand, downscale(rgb, factor), factor, fprint, area, native))
    order = {source.package: i for i, source in enumerate(SOURCES)}
    kept.sort(key=lambda k: (order[k[0].source.package], k[0].original))
    photos: list[Photo] = []
    used: set[str] = set()
    for cand, image, factor, _, _, native in kept:
        title = picture_title(cand)
        name, n = f"{cand.source.package}-{title}", 1
        while name in used:  # same title twice in a package: number the later ones
            n += 1
            name = f"{cand.source.package}-{title}-{n}"
        used.add(name)
        photos.append(Photo(name, title, cand, image, factor, file_licence(cand), native))
    return photos


def texture_score(image: Image.Image) -> float:
    """Mean absolute Laplacian of the luma (0-255): how much fine detail a crop holds."""
    luma = np.asarray(image.convert("L"), dtype=np.float64)
    lap = 4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
    return float(np.abs(lap).mean())


def detail_names(photos: list[Photo]) -> set[str]:
    """The detail set: the DETAIL_COUNT photos whose native-resolution centre crop holds the most
    fine detail (texture_score), among photos that were downscaled for training (so that the crop
    shows the camera's own detail, not a smoothed copy), at most DETAIL_PER_PACKAGE per package,
    never a validation picture. They are written only to detail/, never to train/."""
    eligible = [p for p in photos if p.factor >= 2 and (p.cand.source.package, p.title) not in VAL_PICTURES
                and p.native.size in (VAL_SIZE, VAL_SIZE[::-1])]
    eligible.sort(key=lambda p: (-texture_score(p.native), p.name))
    chosen: list[Photo] = []
    per_package: dict[str, int] = {}
    for photo in eligible:
        package = photo.cand.source.package
        if per_package.get(package, 0) < DETAIL_PER_PACKAGE and len(chosen) < DETAIL_COUNT:
            chosen.append(photo)
            per_package[package] = per_package.get(package, 0) + 1
    return {p.name for p in chosen}


def split_of(photo: Photo, detail: set[str]) -> str:
    if (photo.cand.source.package, photo.title) in VAL_PICTURES:
        return "val"
    return "detail" if photo.name in detail else "train"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument("--deb-cache", type=Path, default=None,
                        help="keep downloaded .deb files here and reuse them on later runs")
    parser.add_argument("--max-flat", type=float, default=0.10,
                        help="drop images with more exactly-flat pixels than this fraction")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        debs = args.deb_cache or Path(tmp) / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        photos = select_photos(download_packages(Path(tmp), debs), args.max_flat)

        detail = detail_names(photos)
        val = [p for p in photos if split_of(p, detail) == "val"]
        missing = set(VAL_PICTURES) - {(p.cand.source.package, p.title) for p in val}
        small = [p.name for p in val
                 if min(p.image.size) < min(VAL_SIZE) or max(p.image.size) < max(VAL_SIZE)]
        if missing or small or len(val) != len(VAL_PICTURES):
            sys.exit(f"validation set broken: missing {sorted(missing)}, too small {small}, "
                     f"{len(val)} found for {len(VAL_PICTURES)} pinned")

        for split in SPLITS:
            (args.out / split).mkdir(parents=True, exist_ok=True)
        rows = []
        for photo in photos:
            split = split_of(photo, detail)
            image = {"val": lambda: center_crop(photo.image, VAL_SIZE), "detail": lambda: photo.native,
                     "train": lambda: photo.image}[split]()
            image.save(args.out / split / f"{photo.name}.png", optimize=False, compress_level=1)
            rows.append({"name": photo.name, "split": split, "source": photo.cand.source.package,
                         "version": photo.cand.version, "original": photo.cand.original,
                         "width": image.width, "height": image.height,
                         "downscale": 1 if split == "detail" else photo.factor,
                         "licence": photo.licence})

    # Files of earlier runs (other names) would otherwise be trained on as well.
    written = {(r["split"], f"{r['name']}.png") for r in rows}
    stale = [p for split in SPLITS for p in sorted((args.out / split).glob("*.png"))
             if (split, p.name) not in written]
    for path in stale:
        path.unlink()
    with open(args.out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    counts = {split: sum(r["split"] == split for r in rows) for split in SPLITS}
    print(f"{len(rows)} photos: " + ", ".join(f"{n} {split}" for split, n in counts.items()) + f" -> {args.out}"
          + (f" ({len(stale)} stale PNGs removed)" if stale else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
