"""Files written by released versions keep decoding bit-exactly (symbols and pixels).

The samples in samples/ were written by shaec 0.1.0 (commit 35a56d1) from a 256x192 crop of
samples/coffee.png; the hashes below are what that version decoded. A later release may change
anything but these results.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from imgcodec import codec
from imgcodec.zoo import find_model_by_id

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

#: file -> (model, decoded shape, sha256 of the int32 symbols, sha256 of the decoded pixels)
RELEASED = {
    "shae-v7-q3.shae": ("shae-v7", (192, 256, 3),
                        "9576b9e956dfd606f46e2ebdc6e372bf55214d768dabea921efa4bc1eb29a12d",
                        "1bbd4043022f08480d49c8831a3af538ab4991f7b1ef54dfd9818348ba5674d9"),
    "shae-v8-q5.shae": ("shae-v8", (192, 256, 3),
                        "805a3786b8e0ede8017eeac0617898c7c79048520fe0ce926c62f94bf7f2c8c5",
                        "f927c1c197be60a86a83ff66caae3277c39800c27893969605ecd18f84710ca0"),
    "shae-v8-q2-alpha.shae": ("shae-v8", (192, 256, 4),
                              "4c0e7bc09c87a5b4284a4a6f59d935c178530ea59a1fa68eb95f698d8e66c99c",
                              "c89394f26f6a2d699c68ace7407e86c2556757f24550b8fd4df2e66c1e93ebdf"),
}


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_sample_decodes_bit_exactly(name: str) -> None:
    model, shape, symbols_sha, pixels_sha = RELEASED[name]
    data = (SAMPLES / name).read_bytes()
    shae = codec.parse(data)
    info = find_model_by_id(shae.model_id)
    assert info.name == model
    symbols = codec.get_codec(info.name).decode_symbols(shae)
    assert _sha(symbols.astype(np.int32)) == symbols_sha
    pixels = codec.decompress(data)
    assert pixels.shape == shape and pixels.dtype == np.uint8
    assert _sha(pixels) == pixels_sha


def test_every_installed_model_has_a_sample() -> None:
    """Each model this version can decode has a committed sample that the test above checks."""
    from imgcodec.zoo import list_models

    sampled = {model for model, *_ in RELEASED.values()}
    assert {info.name for info in list_models()} <= sampled
