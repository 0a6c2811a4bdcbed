"""Bjøntegaard deltas on curves whose answer is known exactly."""

import numpy as np
import pytest

from vtoken.metrics import bd_metric, bd_rate

RATE = np.array([0.02, 0.05, 0.1, 0.2, 0.4])
PSNR = np.array([28.0, 31.0, 33.5, 36.0, 38.0])
LPIPS = np.array([0.40, 0.28, 0.20, 0.13, 0.09])


def test_identical_curves_are_zero():
    assert bd_rate(RATE, PSNR, RATE, PSNR).value == pytest.approx(0.0, abs=1e-12)
    assert bd_metric(RATE, PSNR, RATE, PSNR).value == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("factor,expected", [(0.9, -10.0), (1.25, 25.0)])
def test_rate_scaled_curve(factor, expected):
    res = bd_rate(RATE, PSNR, RATE * factor, PSNR)
    assert res.value == pytest.approx(expected, abs=1e-6)
    assert res.reason is None and res.interval == (PSNR.min(), PSNR.max())


def test_lower_is_better_metric():
    res = bd_rate(RATE, LPIPS, RATE * 0.9, LPIPS, higher_is_better=False)
    assert res.value == pytest.approx(-10.0, abs=1e-6)
    # the same LPIPS curve read as higher-is-better is not a valid RD curve
    bad = bd_rate(RATE, LPIPS, RATE * 0.9, LPIPS)
    assert bad.value is None and "monotone" in bad.reason
    # BD-metric keeps "test minus anchor": 0.01 lower LPIPS reads -0.01 (better)
    assert bd_metric(RATE, LPIPS, RATE, LPIPS - 0.01).value == pytest.approx(-0.01, abs=1e-12)


def test_metric_shift_at_equal_rate():
    res = bd_metric(RATE, PSNR, RATE, PSNR + 0.7)
    assert res.value == pytest.approx(0.7, abs=1e-12)
    assert res.interval == pytest.approx((np.log10(0.02), np.log10(0.4)))


def test_only_the_overlap_counts():
    # PCHIP reproduces straight lines exactly, so on a line in (log rate, PSNR) a curve that
    # covers only the upper part of the anchor's range is still exactly -10% there
    line = 40.0 + 8.0 * np.log10(RATE / 0.4)
    res = bd_rate(RATE, line, RATE[2:] * 0.9, line[2:])
    assert res.value == pytest.approx(-10.0, abs=1e-6)
    assert res.interval == pytest.approx((line[2], line[-1]))
    # and the metric delta is integrated over the shared log-rate interval only
    res = bd_metric(RATE, line, RATE[1:4], line[1:4] + 0.5)
    assert res.value == pytest.approx(0.5, abs=1e-12)
    assert res.interval == pytest.approx((np.log10(0.05), np.log10(0.2)))


def test_shifted_curve_is_not_a_constant_offset():
    """A test codec 1 dB better at every rate saves bits; the saving matches the slope."""
    res = bd_rate(RATE, PSNR, RATE, PSNR + 1.0)
    assert -40.0 < res.value < -5.0
    worse = bd_rate(RATE, PSNR, RATE, PSNR - 1.0)
    assert 5.0 < worse.value < 70.0


def test_points_in_any_order():
    order = [3, 0, 4, 1, 2]
    res = bd_rate(RATE[order], PSNR[order], RATE * 0.9, PSNR)
    assert res.value == pytest.approx(-10.0, abs=1e-6)


def test_undefined_cases_say_why():
    no_overlap = bd_rate(RATE, PSNR, RATE, PSNR + 20)
    assert no_overlap.value is None and "overlap" in no_overlap.reason
    no_rate_overlap = bd_metric(RATE, PSNR, RATE * 100, PSNR)
    assert no_rate_overlap.value is None and "overlap" in no_rate_overlap.reason
    one_point = bd_rate(RATE[:1], PSNR[:1], RATE, PSNR)
    assert one_point.value is None and "fewer than 2" in one_point.reason
    assert bd_metric(RATE, PSNR, RATE[:1], PSNR[:1]).value is None
    bumpy = PSNR.copy()
    bumpy[2] = 30.0
    res = bd_rate(RATE, bumpy, RATE, PSNR)
    assert res.value is None and "anchor" in res.reason


def test_non_finite_points_are_dropped():
    rate = np.append(RATE, 0.8)
    psnr = np.append(PSNR, np.nan)
    assert bd_rate(rate, psnr, RATE * 0.9, PSNR).value == pytest.approx(-10.0, abs=1e-6)


def test_matches_the_ctc_excel_pchip_implementation():
    """The bjontegaard package's README data (libx265 presets); reference values computed with
    bjontegaard 1.3 (method='pchip'), which its authors match to the JCT-VC CTC Excel sheet."""
    rate1 = [9487.76, 4593.60, 2486.44, 1358.24]
    psnr1 = [40.037, 38.615, 36.845, 34.851]
    rate2 = [9787.80, 4469.00, 2451.52, 1356.24]
    psnr2 = [40.121, 38.651, 36.970, 34.987]
    assert bd_rate(rate1, psnr1, rate2, psnr2).value == pytest.approx(-4.417485350589045, abs=1e-9)
    assert bd_metric(rate1, psnr1, rate2, psnr2).value == pytest.approx(0.11969278542479489, abs=1e-11)
