"""Bjøntegaard delta rate (BD-rate): the average rate difference between two RD curves.

Method: G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
ITU-T VCEG-M33, 2001, with the piecewise-cubic interpolation of his follow-up VCEG-AI11
(2008) instead of one cubic polynomial: log(rate) is fitted as a function of quality with a
monotone piecewise-cubic Hermite interpolant (scipy's PchipInterpolator), both fits are
integrated over the quality interval the two curves share, and the mean log-rate
difference d gives BD-rate = (exp(d) - 1) * 100 percent. Negative means the test codec
needs fewer bits than the anchor for the same quality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class BDRate:
    """A BD-rate in percent, or None with the reason it cannot be computed."""

    percent: float | None
    reason: str | None = None
    quality_range: tuple[float, float] | None = None  # the shared interval integrated over


def _clean_curve(rates: Sequence[float], qualities: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sort by quality, keep finite points with positive rate, drop repeated qualities.

    Of points with equal quality the lowest rate (the best one) is kept, so the quality
    axis is strictly increasing as the interpolator needs. Returns (quality, log rate).
    """
    rate_arr = np.asarray(rates, dtype=np.float64)  # (N,)
    quality_arr = np.asarray(qualities, dtype=np.float64)  # (N,)
    if rate_arr.shape != quality_arr.shape:
        raise ValueError(f"{rate_arr.size} rates but {quality_arr.size} qualities")
    keep = np.isfinite(rate_arr) & np.isfinite(quality_arr) & (rate_arr > 0)
    rate_arr, quality_arr = rate_arr[keep], quality_arr[keep]
    order = np.lexsort((rate_arr, quality_arr))  # by quality, then by rate
    rate_arr, quality_arr = rate_arr[order], quality_arr[order]
    first_of_each = np.concatenate([[True], np.diff(quality_arr) > 0])
    return quality_arr[first_of_each], np.log(rate_arr[first_of_each])


def bd_rate_detailed(anchor_rates: Sequence[float], anchor_quality: Sequence[float],
                     test_rates: Sequence[float], test_quality: Sequence[float],
                     within: tuple[float, float] | None = None) -> BDRate:
    """BD-rate of a test curve against an anchor curve, with the reason when undefined.

    `within` (low, high) narrows the shared quality interval, e.g. to compare two models over
    the range an older one covered: a BD-rate is an average over the interval, so a curve that
    reaches further, where the lead is smaller, can average less while being better everywhere.

    Rates in any unit (bpp, bytes) as long as both curves use the same one; quality in dB
    (PSNR or MS-SSIM dB). Non-finite points are ignored. Undefined (percent None) when a
    curve has fewer than 2 distinct points or the quality ranges do not overlap.
    """
    from scipy.interpolate import PchipInterpolator

    anchor_q, anchor_log_rate = _clean_curve(anchor_rates, anchor_quality)
    test_q, test_log_rate = _clean_curve(test_rates, test_quality)
    for label, q in (("anchor", anchor_q), ("test", test_q)):
        if q.size < 2:
            return BDRate(None, f"{label} curve has fewer than 2 distinct finite points")
    low = max(anchor_q[0], test_q[0])
    high = min(anchor_q[-1], test_q[-1])
    if within is not None:
        low, high = max(low, within[0]), min(high, within[1])
    if not high > low:
        return BDRate(None, f"quality ranges do not overlap (anchor {anchor_q[0]:.2f}.."
                            f"{anchor_q[-1]:.2f} dB, test {test_q[0]:.2f}..{test_q[-1]:.2f} dB)")
    anchor_fit = PchipInterpolator(anchor_q, anchor_log_rate)
    test_fit = PchipInterpolator(test_q, test_log_rate)
    mean_log_diff = (test_fit.integrate(low, high) - anchor_fit.integrate(low, high)) / (high - low)
    return BDRate(float((math.exp(mean_log_diff) - 1.0) * 100.0), None, (float(low), float(high)))


def bd_rate(anchor_rates: Sequence[float], anchor_quality: Sequence[float],
            test_rates: Sequence[float], test_quality: Sequence[float]) -> float | None:
    """BD-rate in percent (see :func:`bd_rate_detailed`), or None when undefined."""
    return bd_rate_detailed(anchor_rates, anchor_quality, test_rates, test_quality).percent


def quality_at_rate(rates: Sequence[float], qualities: Sequence[float], rate: float) -> float | None:
    """A curve's quality at `rate`, linear in log rate between the two measured points around
    it (the points sorted by rate); None outside the measured rates. It answers "is the test
    codec ahead at this level's rate", which a BD-rate averages away."""
    rate_arr = np.asarray(rates, dtype=np.float64)
    quality_arr = np.asarray(qualities, dtype=np.float64)
    keep = np.isfinite(rate_arr) & np.isfinite(quality_arr) & (rate_arr > 0)
    order = np.argsort(rate_arr[keep], kind="stable")
    log_rates, curve = np.log(rate_arr[keep][order]), quality_arr[keep][order]
    if not log_rates.size or not rate > 0 or not log_rates[0] <= math.log(rate) <= log_rates[-1]:
        return None
    return float(np.interp(math.log(rate), log_rates, curve))
