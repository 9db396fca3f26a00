"""Exact compact storage of 16-bit arrays (imgcodec.int_arrays) and the legacy prior's counts."""
import numpy as np
import pytest

from imgcodec.int_arrays import (ZIGZAG_ESCAPE, byte_planes, compact_16bit, from_byte_planes, from_zigzag_bytes,
                                 read_16bit, zigzag_bytes)

EDGES = np.array([[0, -1, 1, -127, 127, -128], [128, 300, -300, -32768, 32767, 5]], np.int16)


def test_zigzag_bytes_keep_every_16_bit_value() -> None:
    small, escapes = zigzag_bytes(EDGES)
    assert small.shape == EDGES.shape and small.dtype == np.uint8 and escapes.dtype == np.uint16
    assert small[0].tolist() == [0, 1, 2, 253, 254, ZIGZAG_ESCAPE] and escapes.size == 6
    assert np.array_equal(from_zigzag_bytes(small, escapes, np.int16), EDGES)
    unsigned = EDGES.view(np.uint16)  # differences modulo 2^16
    assert np.array_equal(from_zigzag_bytes(*zigzag_bytes(unsigned), np.uint16), unsigned)
    with pytest.raises(ValueError, match="6 escaped values but 5 escapes"):
        from_zigzag_bytes(small, escapes[:5], np.int16)
    with pytest.raises(ValueError, match="uint16 escapes"):
        from_zigzag_bytes(small, escapes.astype(np.int64), np.int16)


def test_byte_planes_keep_every_16_bit_value() -> None:
    planes = byte_planes(EDGES)
    assert planes.shape == (2, *EDGES.shape) and planes.dtype == np.uint8
    assert np.array_equal(from_byte_planes(planes, np.int16), EDGES)
    with pytest.raises(ValueError, match="byte planes"):
        from_byte_planes(planes[:1], np.int16)


def test_the_smaller_layout_is_chosen_and_read_back() -> None:
    rng = np.random.default_rng(0)
    near_zero = np.rint(rng.normal(0, 20, 5000)).astype(np.int16)  # weights at 1/16 of their RMS
    full = np.rint(rng.normal(0, 8000, 5000)).astype(np.int16)  # weights at full precision
    stored = compact_16bit("w", near_zero)
    assert sorted(stored) == ["w.escapes", "w.zigzag"]
    assert np.array_equal(read_16bit(stored, "w", np.int16), near_zero)
    stored = compact_16bit("w", full)
    assert sorted(stored) == ["w"]
    assert np.array_equal(read_16bit(stored, "w", np.int16), full)
    with pytest.raises(KeyError):
        read_16bit({}, "w", np.int16)


def test_legacy_prior_counts_read_from_either_layout() -> None:
    from imgcodec.zoo import find_model, prior_counts

    with np.load(find_model("shae-v8").folder / "prior.npz") as data:
        arrays = {k: data[k] for k in data.files}
    assert "counts" not in arrays
    counts = prior_counts(arrays)
    assert counts.dtype == np.uint16 and counts.shape == (10, 35, 100, 69)
    assert np.all(counts.astype(np.int64).sum(axis=-1) == 1 << 16)  # every row a whole table
    assert np.array_equal(prior_counts({"counts": counts}), counts)
