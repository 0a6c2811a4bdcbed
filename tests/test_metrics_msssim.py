"""MS-SSIM: identity, ordering, channel modes, and a cross-check against scikit-video."""

import numpy as np
import pytest
from scipy import ndimage

from vtoken.metrics import ms_ssim
from vtoken.metrics.msssim import WEIGHTS, ms_ssim_components, ms_ssim_planes


def natural(t=2, h=180, w=200, seed=0):
    """Smooth random images with texture at several scales, like natural content."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (t, h, w, 3))
    img = sum(ndimage.gaussian_filter(x, (0, s, s, 0)) * s for s in (1, 3, 9))
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.round().astype(np.uint8)


def noisy(a, sigma, seed=1):
    n = np.random.default_rng(seed).normal(0, sigma, a.shape)
    return np.clip(a + n + 0.5, 0, 255).astype(np.uint8)


def test_identical_is_one():
    a = natural()
    assert ms_ssim(a, a) == pytest.approx([1.0, 1.0], abs=1e-12)
    assert ms_ssim(a, a, channel="rgb") == pytest.approx([1.0, 1.0], abs=1e-12)


def test_more_noise_scores_lower():
    a = natural()
    s = [ms_ssim(a, noisy(a, sigma)).mean() for sigma in (2, 8, 32)]
    assert 1.0 > s[0] > s[1] > s[2] > 0.0


def test_score_is_weighted_product_of_scales():
    a = natural(t=1)
    b = noisy(a, 10)
    cs, ssim = ms_ssim_components(a[..., 0].astype(float), b[..., 0].astype(float))
    expected = np.prod(cs[0, :4] ** WEIGHTS[:4]) * ssim[0, 4] ** WEIGHTS[4]
    assert ms_ssim_planes(a[..., 0], b[..., 0])[0] == pytest.approx(expected, rel=1e-12)


def test_rgb_mode_averages_channels():
    a = natural(t=1)
    b = a.copy()
    b[..., 1] = noisy(a[..., 1], 12)
    green = ms_ssim_planes(a[..., 1], b[..., 1])[0]
    assert green < 0.99
    assert ms_ssim(a, b, channel="rgb")[0] == pytest.approx((2.0 + green) / 3.0, rel=1e-12)


def test_batches_do_not_change_values():
    a = natural(t=3)
    b = noisy(a, 6)
    assert np.array_equal(ms_ssim(a, b, batch=1), ms_ssim(a, b, batch=3))


def test_too_small_frames_raise():
    a = np.zeros((1, 100, 200, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 176x176"):
        ms_ssim(a, a)


def test_matches_scikit_video(monkeypatch):
    """skvideo.measure.msssim on the same luma, to float32 precision. skvideo needs aliases that
    numpy 2 removed, and it omits the exponent of the last-scale SSIM (w5): we rebuild its
    variant from our per-scale terms, so every other part (window, 'valid' filtering, pooling,
    constants, weights) is checked."""
    for name, value in (("int", int), ("float", float), ("product", np.prod)):
        monkeypatch.setattr(np, name, value, raising=False)
    skm = pytest.importorskip("skvideo.measure")
    from vtoken.metrics.psnr import rgb_to_y

    a = natural(t=2, h=181, w=203)  # odd sizes exercise the pooling's floor
    b = noisy(a, 12)
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    theirs = skm.msssim(ya[..., None].astype(np.float32), yb[..., None].astype(np.float32))
    cs, ssim = ms_ssim_components(ya, yb)
    ours_skvideo_variant = np.prod(cs[:, :4] ** WEIGHTS[:4], axis=1) * ssim[:, 4]
    assert np.abs(ours_skvideo_variant - theirs).max() < 5e-5
    assert np.abs(ours_skvideo_variant - theirs).max() < 0.01 * (1 - theirs.min())
