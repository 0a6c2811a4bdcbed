"""Bjøntegaard deltas (VCEG-M33) with monotone cubic (PCHIP) interpolation.

* ``bd_rate``: the average difference in log10(rate) between the test and the anchor curve at
  equal quality, over the quality interval both curves cover, as a percentage:
  ``(10 ** mean(log10 R_test - log10 R_anchor) - 1) * 100``. **Negative means the test codec
  needs fewer bits for the same quality** (better), whatever the metric.
* ``bd_metric``: the average difference ``metric_test - metric_anchor`` at equal rate, over the
  log10-rate interval both curves cover, in the metric's own units. Positive is better for
  higher-is-better metrics (PSNR, MS-SSIM); for lower-is-better metrics (LPIPS) **negative is
  better**: the sign is never flipped, so the number reads as "test minus anchor".

Each curve is interpolated piecewise by ``scipy.interpolate.PchipInterpolator`` (monotone, no
overshoot, unlike the original single cubic polynomial fit which can oscillate) and integrated exactly on the overlap only: nothing
is extrapolated. A delta is undefined (``value`` None, ``reason`` says why) when:

* a curve has fewer than ``MIN_POINTS`` = 2 distinct points (PCHIP is then linear between two
  points; the usual sweep of 4+ points gives the classic setting);
* the curves' intervals do not overlap, or overlap in a single point;
* for ``bd_rate``, a curve's quality is not strictly monotone in rate in the direction given by
  ``higher_is_better`` (rate as a function of quality would not exist), or for ``bd_metric``
  two points share a rate.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

MIN_POINTS = 2


class BDResult(NamedTuple):
    """value: the delta (percent for bd_rate, metric units for bd_metric) or None.
    reason: why it is undefined (None when defined). interval: the (lo, hi) integrated over,
    in metric units for bd_rate and in log10(rate) for bd_metric."""

    value: float | None
    reason: str | None = None
    interval: tuple[float, float] | None = None


def _curve(rate: Sequence[float], metric: Sequence[float], name: str):
    r = np.asarray(rate, dtype=np.float64).ravel()
    m = np.asarray(metric, dtype=np.float64).ravel()
    if r.shape != m.shape:
        raise ValueError(f"{name}: {r.size} rates but {m.size} metric values")
    keep = np.isfinite(r) & np.isfinite(m) & (r > 0)
    r, m = r[keep], m[keep]
    order = np.argsort(r, kind="stable")
    return np.log10(r[order]), m[order]


def _integral_mean(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    order = np.argsort(x)
    return float(PchipInterpolator(x[order], y[order]).integrate(lo, hi)) / (hi - lo)


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    return (float(lo), float(hi)) if hi > lo else None


def bd_rate(anchor_rate, anchor_metric, test_rate, test_metric, *,
            higher_is_better: bool = True) -> BDResult:
    """BD-rate of test against anchor, in percent (negative = test saves bits)."""
    curves = []
    for name, r, m in (("anchor", anchor_rate, anchor_metric), ("test", test_rate, test_metric)):
        logr, q = _curve(r, m, name)
        if len(np.unique(logr)) < MIN_POINTS:
            return BDResult(None, f"{name} curve has fewer than {MIN_POINTS} distinct points")
        steps = np.diff(q) if higher_is_better else -np.diff(q)
        if np.any(steps <= 0) or np.any(np.diff(logr) <= 0):
            better = "higher" if higher_is_better else "lower"
            return BDResult(None, f"{name} curve is not strictly monotone: quality must get {better} "
                                  "with every rate increase")
        curves.append((logr, q))
    (ra, qa), (rt, qt) = curves
    span = _overlap(qa, qt)
    if span is None:
        return BDResult(None, "the curves do not overlap in quality")
    diff = _integral_mean(qt, rt, *span) - _integral_mean(qa, ra, *span)
    return BDResult((10.0 ** diff - 1.0) * 100.0, None, span)


def bd_metric(anchor_rate, anchor_metric, test_rate, test_metric) -> BDResult:
    """BD-metric of test against anchor: mean(metric_test - metric_anchor) at equal rate."""
    curves = []
    for name, r, m in (("anchor", anchor_rate, anchor_metric), ("test", test_rate, test_metric)):
        logr, q = _curve(r, m, name)
        if len(logr) < MIN_POINTS:
            return BDResult(None, f"{name} curve has fewer than {MIN_POINTS} points")
        if np.any(np.diff(logr) <= 0):
            return BDResult(None, f"{name} curve has two points at the same rate")
        curves.append((logr, q))
    (ra, qa), (rt, qt) = curves
    span = _overlap(ra, rt)
    if span is None:
        return BDResult(None, "the curves do not overlap in rate")
    value = _integral_mean(rt, qt, *span) - _integral_mean(ra, qa, *span)
    return BDResult(value, None, span)
