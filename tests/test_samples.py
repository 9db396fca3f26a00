"""Files written by released versions keep decoding: the symbols bit-exactly, the pixels as
closely as float arithmetic allows.

The samples in samples/ are the 256x192 crop of samples/coffee.png at x 200, y 100, written by
the first release that had the model (shae-v7 and shae-v8: commit 35a56d1; shae-v8-ssim, shae-v9,
shae-v9-ssim, shae-v9-ssim2, shae-v10, shae-v11 and shae-v11-ssim: the release that added it); the symbol
hashes below are what that version decoded (shae-v9 to shae-v11 and their tunes: the latent's symbols, then the
side latent's). The symbols select
the range coder's probabilities, so they must be identical on every machine. The pixels come
from the float synthesis network, whose last bits depend on the CPU's kernels (onnxruntime picks
AVX2 or AVX-512 code): samples/*.decoded.png hold the decode of the machine that wrote them
(AVX-512 for shae-v7, shae-v8, shae-v9 to shae-v11 and their tunes, AVX2 for shae-v8-ssim) with onnxruntime 1.32, and a decode may
differ from them by one level in a few values (switching off onnxruntime's graph optimisations
changed 1 value in 70,000 to 150,000, by one level).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcodec import codec
from imgcodec.zoo import find_model_by_id

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

#: file -> (model, decoded shape, sha256 of the int32 symbols)
RELEASED = {
    "shae-v7-q3.shae": ("shae-v7", (192, 256, 3),
                        "9576b9e956dfd606f46e2ebdc6e372bf55214d768dabea921efa4bc1eb29a12d"),
    "shae-v8-q5.shae": ("shae-v8", (192, 256, 3),
                        "805a3786b8e0ede8017eeac0617898c7c79048520fe0ce926c62f94bf7f2c8c5"),
    "shae-v8-q2-alpha.shae": ("shae-v8", (192, 256, 4),
                              "4c0e7bc09c87a5b4284a4a6f59d935c178530ea59a1fa68eb95f698d8e66c99c"),
    "shae-v8-ssim-q5.shae": ("shae-v8-ssim", (192, 256, 3),
                             "161663eab145ad92adb2959d4803347f0033b3185e8e08c6ef79e46140fa24e8"),
    "shae-v9-q5.shae": ("shae-v9", (192, 256, 3),
                        "500d226c19088dad1136512f1fa45e56265bd2c3f142200856011a6587f12261"),
    "shae-v9-ssim-q5.shae": ("shae-v9-ssim", (192, 256, 3),
                             "74b3e2f259c93affc8c1eb20322bd4c99f3d0faa4ba7a41b61b65b853c0e8a49"),
    "shae-v9-ssim2-q5.shae": ("shae-v9-ssim2", (192, 256, 3),
                              "f4150bd5b95101281d8dcc2a00f31fd002033d34a968cb557de42460fc6b80b1"),
    "shae-v10-q5.shae": ("shae-v10", (192, 256, 3),
                         "20b83f72b3dc3a86712a92d9059eb02c4c2ec01472cb7e1f82fe7d21ee393272"),
    "shae-v11-q5.shae": ("shae-v11", (192, 256, 3),
                         "60b1452212ea0a241442c72d0bb2e17a1904950f02143da481fbd08ece4dc04a"),
    "shae-v11-ssim-q5.shae": ("shae-v11-ssim", (192, 256, 3),
                              "561813545bc01dc5430670c73b36940aa46058fb4d2aa2f43e8d0f33383cb341"),
}


#: How far a decode may be from samples/*.decoded.png: float rounding flips a value by one level
#: where the network's output sits at a rounding boundary.
MAX_PIXEL_DIFFERENCE = 1
MAX_SHARE_DIFFERENT = 0.005


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_sample_decodes_bit_exactly(name: str) -> None:
    model, shape, symbols_sha = RELEASED[name]
    data = (SAMPLES / name).read_bytes()
    shae = codec.parse(data)
    info = find_model_by_id(shae.model_id)
    assert info.name == model
    symbols = codec.get_codec(info.name).decode_symbols(shae)  # shae-v9: the latent's, then the side latent's
    parts = symbols if isinstance(symbols, tuple) else (symbols,)
    assert _sha(np.concatenate([part.astype(np.int32).ravel() for part in parts])) == symbols_sha
    pixels = codec.decompress(data)
    assert pixels.shape == shape and pixels.dtype == np.uint8
    reference = np.asarray(Image.open(SAMPLES / name.replace(".shae", ".decoded.png")))
    assert reference.shape == shape
    difference = np.abs(pixels.astype(np.int16) - reference)
    assert difference.max() <= MAX_PIXEL_DIFFERENCE
    assert np.mean(difference > 0) <= MAX_SHARE_DIFFERENT


def test_every_installed_model_has_a_sample() -> None:
    """Each model this version can decode has a committed sample that the test above checks."""
    from imgcodec.zoo import list_models

    sampled = {model for model, *_ in RELEASED.values()}
    assert {info.name for info in list_models()} <= sampled
