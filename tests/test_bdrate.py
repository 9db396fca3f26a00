"""Tests of the Bjøntegaard delta rate on hand-worked cases."""

from __future__ import annotations

import math

import pytest

from imgcodec.bench.bdrate import bd_rate, bd_rate_detailed, quality_at_rate

QUALITY = [28.0, 31.0, 33.5, 36.0, 39.0]  # dB, unevenly spaced
ANCHOR_RATE = [0.10, 0.22, 0.35, 0.61, 1.20]  # bpp, deliberately not log-linear


def test_constant_ratio_080_gives_minus_20_percent() -> None:
    test_rate = [0.8 * r for r in ANCHOR_RATE]
    assert bd_rate(ANCHOR_RATE, QUALITY, test_rate, QUALITY) == pytest.approx(-20.0, abs=1e-6)


def test_constant_ratio_125_gives_plus_25_percent() -> None:
    test_rate = [1.25 * r for r in ANCHOR_RATE]
    assert bd_rate(ANCHOR_RATE, QUALITY, test_rate, QUALITY) == pytest.approx(25.0, abs=1e-6)


def test_identical_curves_give_zero() -> None:
    assert bd_rate(ANCHOR_RATE, QUALITY, ANCHOR_RATE, QUALITY) == pytest.approx(0.0, abs=1e-12)


def test_log_linear_curves_sampled_at_different_qualities() -> None:
    """log(rate) linear in quality is reproduced exactly by PCHIP, so the answer is exact:
    the anchor is r = exp(0.2 q - 8), the test 0.8 times that, sampled elsewhere; only the
    shared interval 30..38 dB counts."""
    anchor_q = [26.0, 30.0, 34.0, 38.0]
    test_q = [30.0, 31.5, 35.0, 38.0, 41.0]
    anchor_r = [math.exp(0.2 * q - 8) for q in anchor_q]
    test_r = [0.8 * math.exp(0.2 * q - 8) for q in test_q]
    result = bd_rate_detailed(anchor_r, anchor_q, test_r, test_q)
    assert result.percent == pytest.approx(-20.0, abs=1e-6)
    assert result.quality_range == (30.0, 38.0)


def test_ratio_varying_linearly_in_log() -> None:
    """log(test/anchor) goes linearly from log 0.8 to 0 over the interval, so the mean log
    difference is log(0.8) / 2 and BD-rate = sqrt(0.8) - 1 = -10.557...%."""
    q = [30.0, 32.0, 34.0, 36.0, 38.0]
    anchor_r = [math.exp(0.25 * x - 9) for x in q]
    test_r = [r * 0.8 ** ((38.0 - x) / 8.0) for r, x in zip(anchor_r, q)]
    expected = (math.sqrt(0.8) - 1) * 100
    assert bd_rate(anchor_r, q, test_r, q) == pytest.approx(expected, abs=1e-6)


def test_unsorted_duplicate_and_non_finite_points_are_cleaned() -> None:
    order = [3, 0, 4, 1, 2]
    shuffled_q = [QUALITY[i] for i in order] + [QUALITY[2], math.inf]
    shuffled_r = [0.8 * ANCHOR_RATE[i] for i in order] + [0.9, 2.0]  # duplicate worse point, inf
    assert bd_rate(ANCHOR_RATE, QUALITY, shuffled_r, shuffled_q) == pytest.approx(-20.0, abs=1e-6)


def test_non_overlapping_ranges_give_none_with_reason() -> None:
    result = bd_rate_detailed(ANCHOR_RATE, QUALITY, [1.0, 2.0, 3.0], [40.0, 42.0, 44.0])
    assert result.percent is None
    assert "do not overlap" in (result.reason or "")
    # ranges that only touch at one point do not overlap either
    assert bd_rate(ANCHOR_RATE, QUALITY, [1.0, 2.0], [39.0, 41.0]) is None


def test_fewer_than_two_points_gives_none() -> None:
    result = bd_rate_detailed(ANCHOR_RATE, QUALITY, [0.3], [33.0])
    assert result.percent is None
    assert "fewer than 2" in (result.reason or "")
    assert bd_rate(ANCHOR_RATE, QUALITY, [0.3, 0.4], [33.0, 33.0]) is None  # one distinct quality


def test_within_narrows_the_interval() -> None:
    """The ratio goes from 0.8 at 30 dB to 1 at 38 dB (linear in log); over 34..38 dB only, the
    mean log difference is log(0.8) / 4."""
    q = [30.0, 32.0, 34.0, 36.0, 38.0]
    anchor_r = [math.exp(0.25 * x - 9) for x in q]
    test_r = [r * 0.8 ** ((38.0 - x) / 8.0) for r, x in zip(anchor_r, q)]
    result = bd_rate_detailed(anchor_r, q, test_r, q, within=(34.0, 40.0))
    assert result.quality_range == (34.0, 38.0)
    assert result.percent == pytest.approx((0.8 ** 0.25 - 1) * 100, abs=1e-6)


def test_within_outside_the_curves_gives_none() -> None:
    result = bd_rate_detailed(ANCHOR_RATE, QUALITY, ANCHOR_RATE, QUALITY, within=(40.0, 42.0))
    assert result.percent is None and "overlap" in result.reason


def test_quality_at_rate_is_linear_in_log_rate_between_measured_points() -> None:
    rates, psnr = [0.8, 0.2, 0.4], [34.0, 28.0, 31.0]  # in any order
    assert quality_at_rate(rates, psnr, 0.4) == pytest.approx(31.0)
    assert quality_at_rate(rates, psnr, math.sqrt(0.2 * 0.4)) == pytest.approx(29.5)
    assert quality_at_rate(rates, psnr, 0.8) == pytest.approx(34.0)
    assert quality_at_rate(rates, psnr, 0.19) is None and quality_at_rate(rates, psnr, 0.81) is None
    assert quality_at_rate([], [], 0.5) is None and quality_at_rate(rates, psnr, 0.0) is None
