"""Reading and writing images safely.

Everything the codec gets from the outside world passes through ``load_image``: it accepts
whatever Pillow can read, turns every colour mode into 8-bit RGB plus an optional alpha plane,
applies the EXIF orientation, and refuses images whose header claims a size that would be
dangerous to decode. Outputs are written with ``atomic_write`` so that an interrupted run never
leaves a half-written file under the final name.

The alpha plane is stored losslessly in the ``.shae`` container by ``encode_alpha`` as a PNG
(greyscale, bit depth 1 or 8), so any PNG reader can recover it.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from PIL import ExifTags, Image, ImageOps

from imgcodec.errors import FormatError, ImageInputError, OutputExistsError, ShaecError

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "LoadedImage",
    "atomic_write",
    "decode_alpha",
    "encode_alpha",
    "encode_image_bytes",
    "load_image",
    "save_image",
]

MAX_SIDE = 16384
"""The largest width or height accepted from an input image."""

MAX_PIXELS = 16384 * 16384
"""The largest pixel count accepted (decompression-bomb guard).

Pillow additionally refuses to open images above ``2 * PIL.Image.MAX_IMAGE_PIXELS``
(about 179 megapixels by default); such images are reported as too large as well.
"""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the 12-byte IEND chunk that ends every PNG

# Formats whose Pillow writer keeps an RGBA image's alpha channel; others get plain RGB.
_ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "TGA", "JPEG2000"})



@dataclass(frozen=True)
class Metadata:
    """What an image carries besides its pixels, kept through encode and decode: the ICC colour
    profile, the EXIF block (with the orientation reset to 1 once it has been applied) and the
    XMP packet, each as raw bytes; and whether the image is greyscale."""

    icc: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    gray: bool = False

    def without_profiles(self) -> "Metadata":
        """--strip: no ICC, EXIF or XMP (greyscale is a property of the pixels and stays)."""
        return Metadata(gray=self.gray)


@dataclass
class LoadedImage:
    """An input image as the codec sees it.

    ``rgb`` is an (H, W, 3) uint8 array; ``alpha`` an (H, W) uint8 array, or None when the
    image has no alpha channel or it is fully opaque; ``notes`` lists, in plain words, every
    conversion that was applied (for ``--verbose`` output); ``metadata`` what it carries.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    notes: list[str] = field(default_factory=list)
    metadata: Metadata = field(default_factory=Metadata)


# --------------------------------------------------------------------------------------------
# Reading


def _source_name(source: str | os.PathLike[str] | bytes | BinaryIO) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<data>"
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


def _open_source(source: str | os.PathLike[str] | bytes | BinaryIO, name: str) -> BinaryIO:
    """Return a seekable binary stream for ``source``; raise ImageInputError if unreadable."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(source, "rb")
        except FileNotFoundError:
            raise ImageInputError(f"cannot read {name!r}: no such file") from None
        except IsADirectoryError:
            raise ImageInputError(f"cannot read {name!r}: it is a directory") from None
        except OSError as exc:
            raise ImageInputError(f"cannot read {name!r}: {exc.strerror or exc}") from None
    # A stream such as stdin may not be seekable, which Pillow needs; buffer it then.
    try:
        seekable = source.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    if seekable:
        return source
    try:
        return io.BytesIO(source.read())
    except OSError as exc:
        raise ImageInputError(f"cannot read {name!r}: {exc.strerror or exc}") from None


def _check_size(name: str, width: int, height: int) -> None:
    """Refuse sizes outside the supported range; called on the header, before decoding."""
    if width < 1 or height < 1:
        raise ImageInputError(f"{name!r} is {width}x{height} pixels; there is nothing to encode")
    if max(width, height) > MAX_SIDE:
        raise ImageInputError(
            f"{name!r} is {width}x{height} pixels; the largest supported side is {MAX_SIDE}"
        )
    if width * height > MAX_PIXELS:
        raise ImageInputError(
            f"{name!r} is {width}x{height} pixels; at most {MAX_PIXELS} pixels are supported"
        )


def _has_16bit_samples(im: Image.Image) -> bool:
    """Whether the undecoded image stores 16-bit samples that Pillow will cut to 8 bits.

    Best effort: looks at the raw mode of the decoder tiles (e.g. ``RGB;16B`` for a 16-bit
    RGB PNG), which Pillow only exposes before ``load()``.
    """
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else None)
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # malformed EXIF must not make an otherwise fine image unreadable
        return 1
    return value if isinstance(value, int) else 1


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _alpha_or_none(alpha: np.ndarray) -> np.ndarray | None:
    return None if bool((alpha == 255).all()) else np.ascontiguousarray(alpha)


def _to_rgb_alpha(im: Image.Image, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert a loaded Pillow image of any mode to 8-bit RGB and an optional alpha plane.

    Appends a note for every conversion; raises ValueError for a mode with no RGB conversion.
    """
    mode = im.mode
    if mode == "RGB":
        return np.array(im, dtype=np.uint8), None
    if mode == "RGBA":
        arr = np.array(im, dtype=np.uint8)
        return np.ascontiguousarray(arr[:, :, :3]), _alpha_or_none(arr[:, :, 3])
    if mode == "L":
        notes.append("converted grayscale to RGB")
        return _gray_to_rgb(np.array(im, dtype=np.uint8)), None
    if mode == "1":
        notes.append("converted 1-bit black-and-white to 8-bit RGB")
        return _gray_to_rgb(np.array(im.convert("L"), dtype=np.uint8)), None
    if mode in ("LA", "La"):
        arr = np.array(im.convert("LA"), dtype=np.uint8)
        notes.append("converted grayscale with alpha to RGB with alpha")
        return _gray_to_rgb(arr[:, :, 0]), _alpha_or_none(arr[:, :, 1])
    if mode.startswith("I;16"):
        wide = np.array(im).astype(np.uint32)
        notes.append("converted 16-bit grayscale to 8-bit RGB")
        return _gray_to_rgb(((wide + 128) // 257).astype(np.uint8)), None
    if mode == "I":
        # 32-bit integer grayscale is how some readers present 16-bit data; read it as 0..65535.
        wide = np.clip(np.array(im, dtype=np.int64), 0, 65535)
        notes.append("converted 32-bit integer grayscale (read as 16-bit, clipped to 0..65535) to 8-bit RGB")
        return _gray_to_rgb(((wide + 128) // 257).astype(np.uint8)), None
    if mode == "F":
        flt = np.nan_to_num(np.array(im, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if flt.size and flt.min() >= 0.0 and flt.max() <= 1.0:
            flt = flt * 255.0
            notes.append("converted floating-point grayscale (range 0..1) to 8-bit RGB")
        else:
            notes.append("converted floating-point grayscale (clipped to 0..255) to 8-bit RGB")
        return _gray_to_rgb(np.clip(np.rint(flt), 0, 255).astype(np.uint8)), None
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info or (im.palette is not None and "A" in im.palette.mode)
        if has_alpha:
            notes.append("converted palette image with transparency to RGB with alpha")
            return _to_rgb_alpha(im.convert("RGBA"), [])
        notes.append("converted palette image to RGB")
        return np.array(im.convert("RGB"), dtype=np.uint8), None
    if mode == "CMYK":
        notes.append("converted CMYK to RGB (without colour management)")
        return np.array(im.convert("RGB"), dtype=np.uint8), None
    if mode in ("RGBa", "RGBX"):
        return _to_rgb_alpha(im.convert("RGBA"), notes)
    try:
        converted = im.convert("RGB")
    except ValueError:
        raise ValueError(f"colour mode {mode} is not supported") from None
    notes.append(f"converted colour mode {mode} to RGB")
    return np.array(converted, dtype=np.uint8), None


def _icc_note(im: Image.Image) -> str | None:
    """A note if the image carries a colour profile that is (probably) not sRGB: it is kept in
    the .shae file and written back on decode, so viewers that honour profiles show the colours
    as the original (the pixels themselves are not converted)."""
    profile = im.info.get("icc_profile")
    if not profile:
        return None
    try:
        from PIL import ImageCms

        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except Exception:  # no littlecms, or an unreadable profile: say nothing specific
        description = ""
    if "srgb" in description.lower():
        return None
    label = f" ({description.strip()})" if description.strip() else ""
    return f"kept the embedded colour profile{label}; the decoded image carries it too"


#: Modes whose images are greyscale (with or without alpha).
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def _metadata(im: Image.Image, oriented: bool) -> Metadata:
    """ICC, EXIF (orientation reset once applied) and XMP of an opened image, as bytes."""
    icc = im.info.get("icc_profile") or None
    exif_bytes = None
    try:
        exif = im.getexif()
        if len(exif):
            if oriented and ExifTags.Base.Orientation in exif:
                exif[ExifTags.Base.Orientation] = 1
            exif_bytes = exif.tobytes() or None
    except Exception:  # malformed EXIF is dropped, not fatal
        exif_bytes = None
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return Metadata(icc=bytes(icc) if icc else None, exif=exif_bytes, xmp=bytes(xmp) if xmp else None,
                    gray=im.mode in _GRAY_MODES or (im.mode == "P" and _palette_is_gray(im)))


def _palette_is_gray(im: Image.Image) -> bool:
    palette = im.getpalette() or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))


def load_image(source: str | os.PathLike[str] | bytes | BinaryIO) -> LoadedImage:
    """Read an image into 8-bit RGB plus an optional alpha plane.

    The size in the header is checked before any pixel is decoded (Pillow opens lazily), so a
    small file claiming a huge image cannot exhaust memory. Raises ImageInputError, with one
    line naming the input, if the file is missing, unreadable, or too large.
    """
    name = _source_name(source)
    stream = _open_source(source, name)
    notes: list[str] = []
    try:
        # Pillow warns (on stderr) about oddities such as malformed metadata; record them and
        # report them as notes instead. Its decompression-bomb warning is dropped: our own
        # size limits are the policy.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                im = Image.open(stream)
            except Image.DecompressionBombError as exc:
                raise ImageInputError(
                    f"cannot read {name!r}: it is too large to decode safely ({_reason(exc).rstrip('.')})"
                ) from None
            except Image.UnidentifiedImageError:
                raise ImageInputError(
                    f"cannot read {name!r} as an image: unknown or unsupported format"
                ) from None
            except Exception as exc:  # Pillow's plugins raise many types on malformed headers
                raise ImageInputError(f"cannot read {name!r} as an image: {_reason(exc)}") from None
            with im:
                _check_size(name, *im.size)
                try:
                    rgb, alpha, metadata = _decode(im, notes)
                except MemoryError:
                    raise ImageInputError(f"cannot read {name!r}: not enough memory to decode it") from None
                except Exception as exc:  # truncated data, decoder errors, bad chunks, ...
                    raise ImageInputError(f"cannot read {name!r} as an image: {_reason(exc)}") from None
    finally:
        if stream is not source:
            stream.close()
    for warning in caught:
        if issubclass(warning.category, Image.DecompressionBombWarning):
            continue
        if issubclass(warning.category, UserWarning):
            note = f"warning while reading: {_reason(warning.message)}"
            if note not in notes:
                notes.append(note)
        else:  # not about the image (e.g. a deprecation): pass it on unchanged
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return LoadedImage(rgb=rgb, alpha=alpha, notes=notes, metadata=metadata)


def _decode(im: Image.Image, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None, Metadata]:
    """Decode an opened, size-checked image: first frame, EXIF orientation, RGB + alpha, metadata."""
    if getattr(im, "is_animated", False):
        notes.append("used the first frame of a multi-frame image")
    deep = _has_16bit_samples(im) and not im.mode.startswith("I")
    orientation = _orientation(im)
    im.load()
    oriented = im
    if orientation in range(2, 9):
        oriented = ImageOps.exif_transpose(im)
        notes.append(f"applied EXIF orientation {orientation}")
    if deep:
        notes.append("reduced 16-bit samples to 8 bits")
    rgb, alpha = _to_rgb_alpha(oriented, notes)
    icc = _icc_note(im)
    if icc is not None:
        notes.append(icc)
    return rgb, alpha, _metadata(im, oriented is not im)


def _reason(exc: BaseException) -> str:
    """One line describing an exception raised while decoding."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Writing


def _format_from_name(fmt: str) -> str:
    """Map a format name or file extension ('png', 'JPG', '.webp') to a Pillow format name."""
    Image.init()
    key = fmt.strip()
    upper = key.upper().lstrip(".")
    if upper in Image.SAVE:
        return upper
    ext = "." + key.lower().lstrip(".")
    found = Image.registered_extensions().get(ext)
    if found is None:
        raise ShaecError(f"unknown image format {fmt!r}")
    if found not in Image.SAVE:
        raise ShaecError(f"cannot write {found} images")
    return found


def _format_for_path(dest: Path) -> str:
    if not dest.suffix:
        return "PNG"
    Image.init()
    found = Image.registered_extensions().get(dest.suffix.lower())
    if found is None:
        raise ShaecError(
            f"cannot tell the image format of {str(dest)!r} from its extension; use e.g. .png, .jpg or .webp"
        )
    if found not in Image.SAVE:
        raise ShaecError(f"cannot write {found} images")
    return found


def _check_planes(rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    if alpha is not None and (alpha.dtype != np.uint8 or alpha.shape != rgb.shape[:2]):
        raise ValueError(f"alpha must be an (H, W) uint8 array matching rgb, got {alpha.dtype} {alpha.shape}")


def check_output_format(fmt: str) -> str:
    """The Pillow format that `fmt` (name or extension) writes; ShaecError for one Pillow cannot
    write. Callers check it before decoding, so a bad name costs no decode."""
    return _format_from_name(fmt)


def drops_alpha(fmt: str) -> bool:
    """Whether writing to `fmt` loses an alpha channel (JPEG, BMP, ...)."""
    return _format_from_name(fmt) not in _ALPHA_FORMATS


def encode_image_bytes(rgb: np.ndarray, alpha: np.ndarray | None, fmt: str,
                       metadata: Metadata | None = None) -> bytes:
    """Encode an image in the given format (name or extension, e.g. 'png', '.jpg') to bytes.

    Alpha is kept by formats that support it (PNG, WebP, TIFF, TGA, JPEG 2000) and dropped
    otherwise. JPEG is written at quality 95 without chroma subsampling and WebP losslessly,
    so that writing the decoded image adds as little loss as possible.
    """
    _check_planes(rgb, alpha)
    pil_format = _format_from_name(fmt)
    return _encode(rgb, alpha, pil_format, metadata or Metadata())


def _metadata_options(pil_format: str, metadata: Metadata) -> dict[str, object]:
    """Pillow save arguments that write the profile, EXIF and XMP where the format holds them."""
    options: dict[str, object] = {}
    if metadata.icc and pil_format in ("PNG", "JPEG", "WEBP", "TIFF", "JPEG2000"):
        options["icc_profile"] = metadata.icc
    if metadata.exif and pil_format in ("PNG", "JPEG", "WEBP", "TIFF"):
        options["exif"] = metadata.exif
    if metadata.xmp:
        if pil_format in ("JPEG", "WEBP"):
            options["xmp"] = metadata.xmp
        elif pil_format == "PNG":
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", metadata.xmp.decode("utf-8", errors="replace"))
            options["pnginfo"] = info
    return options


def _save_options(pil_format: str) -> dict[str, object]:
    """Writer options where Pillow's defaults would add a second, avoidable loss, or cost time:
    PNG at zlib level 1 writes a 1-megapixel decode in a quarter of the default's time, for
    files about 5 % larger (re-save it for the smallest PNG)."""
    if pil_format == "PNG":
        return {"compress_level": 1}
    if pil_format == "JPEG":
        return {"quality": 95, "subsampling": 0}
    if pil_format == "WEBP":
        return {"lossless": True}
    return {}


def _encode(rgb: np.ndarray, alpha: np.ndarray | None, pil_format: str, metadata: Metadata) -> bytes:
    keep_alpha = alpha is not None and pil_format in _ALPHA_FORMATS
    if metadata.gray:  # a greyscale original comes back greyscale
        gray = np.rint(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        im = Image.fromarray(np.dstack([gray, alpha]), mode="LA") if keep_alpha else Image.fromarray(gray, mode="L")
        if pil_format in ("JPEG2000",) and keep_alpha:
            im = im.convert("RGBA")
    elif keep_alpha:
        im = Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")
    else:
        im = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    options = {**_save_options(pil_format), **_metadata_options(pil_format, metadata)}
    buf = io.BytesIO()
    try:
        im.save(buf, format=pil_format, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise ShaecError(f"cannot encode the image as {pil_format}: {_reason(exc)}") from None
    return buf.getvalue()


def save_image(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    dest: str | Path,
    *,
    fmt: str | None = None,
    force: bool = False,
) -> None:
    """Write an image to ``dest`` atomically, in ``fmt`` or the format its extension names.

    A path without an extension gets PNG; an extension Pillow does not know is an error rather
    than a silent PNG. Raises OutputExistsError if ``dest`` exists and ``force`` is false.
    """
    _check_planes(rgb, alpha)
    path = Path(dest)
    pil_format = _format_from_name(fmt) if fmt is not None else _format_for_path(path)
    if not force and os.path.lexists(path):  # fail before the (possibly slow) encode
        raise OutputExistsError(f"{str(path)!r} exists; use -f/--force to overwrite")
    atomic_write(path, _encode(rgb, alpha, pil_format, Metadata()), force=force)


def _umask_mode() -> int:
    """File mode 0o666 filtered by the process umask, read without changing it (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def atomic_write(dest: str | Path, data: bytes | Callable[[BinaryIO], None], *, force: bool = False) -> None:
    """Write ``data`` to ``dest`` so that ``dest`` is either untouched or complete. ``data`` is
    bytes, or a function that writes them to the open file (a writer streaming a large image).

    The data goes to a hidden temporary file in the same directory (so the final rename stays
    on one file system), is fsync'ed, and is then moved into place. Without ``force`` the move
    is ``os.link``, which fails if ``dest`` exists, so a file created by someone else in the
    meantime is never clobbered; on file systems without hard links it falls back to a check
    right before ``os.replace`` (a small race window). With ``force`` it is ``os.replace``.
    The temporary file is removed on any failure, including KeyboardInterrupt. The temporary
    file is created with ``os.open`` rather than ``tempfile`` so the result gets the usual
    umask-based permissions instead of 0600; when overwriting, the old file's mode is kept.

    Raises OutputExistsError if ``dest`` exists and ``force`` is false, and ShaecError (one
    line) if the file cannot be written. ``dest`` '-' (stdout) must be handled by the caller.
    """
    path = Path(dest)
    if str(dest) == "-":
        raise ValueError("'-' means stdout and must be handled by the caller")
    shown = str(path)
    if not force and os.path.lexists(path):
        raise OutputExistsError(f"{shown!r} exists; use -f/--force to overwrite")
    if path.is_dir():
        raise ShaecError(f"cannot write {shown!r}: it is a directory")
    directory = path.parent

    tmp: Path | None = None
    try:
        try:
            mode = _umask_mode()
            if force:
                try:
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                except OSError:
                    pass
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            for _ in range(100):
                candidate = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
                try:
                    fd = os.open(candidate, flags, mode)
                except FileExistsError:
                    continue
                tmp = candidate
                break
            else:
                raise OSError(errno.EEXIST, "could not create a temporary file")
            with os.fdopen(fd, "wb") as out:
                if callable(data):
                    data(out)
                else:
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if force:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise OutputExistsError(f"{shown!r} exists; use -f/--force to overwrite") from None
                except OSError:
                    # No hard links here (e.g. FAT, some network file systems): check, then move.
                    if os.path.lexists(path):
                        raise OutputExistsError(f"{shown!r} exists; use -f/--force to overwrite") from None
                    os.replace(tmp, path)
                else:
                    os.unlink(tmp)
            tmp = None
            _fsync_directory(directory)
        except OSError as exc:
            raise ShaecError(f"cannot write {shown!r}: {exc.strerror or _reason(exc)}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); silently skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Alpha plane coding


def encode_alpha(alpha: np.ndarray) -> bytes:
    """Code an (H, W) uint8 alpha plane losslessly as a PNG (1-bit if only 0/255, else 8-bit).

    PNG's row filters plus maximum deflate compression suit alpha masks well, and any PNG
    reader can decode the segment. For a pure 0/255 mask both depths are tried and the
    smaller kept.
    """
    if alpha.dtype != np.uint8 or alpha.ndim != 2 or alpha.size == 0:
        raise ValueError(f"alpha must be a non-empty (H, W) uint8 array, got {alpha.dtype} {alpha.shape}")
    plane = np.ascontiguousarray(alpha)
    candidates = [_png_bytes(Image.fromarray(plane, mode="L"))]
    if bool(np.isin(plane, (0, 255)).all()):
        candidates.append(_png_bytes(Image.fromarray(plane, mode="L").convert("1", dither=Image.Dither.NONE)))
    return min(candidates, key=len)


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def alpha_max_pixels() -> int:
    """The largest alpha plane decode_alpha reads: MAX_PIXELS, or less where Pillow refuses a
    PNG as a decompression bomb (above 2 * PIL.Image.MAX_IMAGE_PIXELS; no limit if that is None)."""
    limit = Image.MAX_IMAGE_PIXELS
    return MAX_PIXELS if limit is None else min(MAX_PIXELS, 2 * int(limit))


def decode_alpha(payload: bytes, width: int, height: int) -> np.ndarray:
    """Decode an alpha segment made by ``encode_alpha`` into an (height, width) uint8 array.

    Raises FormatError if the payload is not a greyscale PNG of exactly that size or cannot be
    decoded. The size is checked before decoding, so a corrupted segment cannot cause a huge
    allocation.
    """
    if not bytes(payload[: len(_PNG_SIGNATURE)]) == _PNG_SIGNATURE:
        raise FormatError("alpha segment is corrupted (not a PNG)")
    if not bytes(payload[-len(_PNG_END) :]) == _PNG_END:
        # Pillow tolerates a PNG cut after its pixel data; the segment must be complete.
        raise FormatError("alpha segment is corrupted (the PNG is incomplete)")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and width * height <= MAX_PIXELS):
        raise FormatError(f"alpha segment is {width}x{height} pixels, which is larger than supported")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(payload)), formats=["PNG"]) as im:
                if im.size != (width, height):
                    raise FormatError(
                        f"alpha segment is {im.size[0]}x{im.size[1]} pixels but the image is {width}x{height}"
                    )
                if im.mode not in ("L", "1"):
                    raise FormatError(f"alpha segment has colour mode {im.mode}, expected greyscale")
                im.load()
                plane = np.array(im.convert("L") if im.mode == "1" else im, dtype=np.uint8)
    except FormatError:
        raise
    except Image.DecompressionBombError:
        raise FormatError(f"alpha segment is {width}x{height} pixels, too large to decode safely") from None
    except Image.UnidentifiedImageError:
        raise FormatError("alpha segment is corrupted (not a readable PNG)") from None
    except Exception as exc:  # any decoder failure means the segment is damaged
        raise FormatError(f"alpha segment is corrupted ({_reason(exc)})") from None
    return plane
