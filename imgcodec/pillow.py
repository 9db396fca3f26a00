"""A Pillow plugin for .shae files, in the manner of pillow-heif and the AVIF/JXL plugins.

    import imgcodec.pillow              # registers the plugin (or call imgcodec.pillow.register())
    from PIL import Image
    im = Image.open("photo.shae")       # decodes on load(); mode RGB or RGBA
    im.save("copy.shae", quality=5)     # quality 1..10 (shaec's levels); default: the model's
    im.save("copy.shae", tune="ssim")   # the MS-SSIM fine-tune of the default model (shaec --tune)

Opening reads only the 24-byte header, as Pillow expects (size and mode without decoding);
the latent is decoded when the pixels are needed. The decoder's limits apply: files declaring
more than Image.MAX_IMAGE_PIXELS * 2 pixels are refused by Pillow itself.
"""
from __future__ import annotations

from typing import IO

import numpy as np
from PIL import Image, ImageFile

from . import bitstream
from .bitstream import MAGIC, SEGMENT_ALPHA

FORMAT = "SHAE"


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == MAGIC


class ShaeImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "shaec learned image codec"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            self._shae = bitstream.unpack(data)
        except Exception as exc:  # FormatError: Pillow reports open failures as SyntaxError
            raise SyntaxError(f"not a valid .shae file: {exc}") from None
        self._size = (self._shae.width, self._shae.height)
        self._mode = "RGBA" if self._shae.segment(SEGMENT_ALPHA) is not None else "RGB"
        self.info["quality"] = self._shae.level
        self.tile = []

    def load(self):  # type: ignore[no-untyped-def]
        if getattr(self, "_shae", None) is not None:  # decode once, on the first load()
            from .codec import _codec_for
            from .zoo import find_model_by_id

            shae, self._shae = self._shae, None
            pixels = _codec_for(find_model_by_id(shae.model_id).model_id).decode(shae, max_pixels=0)
            decoded = Image.fromarray(pixels, self.mode)
            self.im = decoded.im
            self._size = decoded.size
        return super().load()


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from .codec import compress

    quality = im.encoderinfo.get("quality")
    tune = im.encoderinfo.get("tune")
    model = None
    if tune is not None:
        from .zoo import tuned_model

        model = tuned_model(tune).name
    rgba = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    pixels = np.asarray(im.convert("RGBA" if rgba else "RGB"))
    fp.write(compress(pixels, quality, model=model))


def register() -> None:
    """Teach Pillow to open and save .shae files (idempotent)."""
    Image.register_open(FORMAT, ShaeImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".shae")
    Image.register_mime(FORMAT, "image/x-shae")


register()
