"""PSNR on RGB and Y: known values, the cap, per-frame means, and Y against swscale's Y plane."""

import av
import numpy as np
import pytest

from vtoken.metrics import PSNR_CAP, psnr_rgb, psnr_y
from vtoken.metrics.psnr import rgb_to_y


def frames(t=2, h=16, w=24, value=0):
    return np.full((t, h, w, 3), value, dtype=np.uint8)


def test_identical_frames_are_capped():
    a = np.random.default_rng(0).integers(0, 256, (3, 16, 24, 3), dtype=np.uint8)
    assert np.all(psnr_rgb(a, a) == PSNR_CAP)
    assert np.all(psnr_y(a, a) == PSNR_CAP)


def test_rgb_known_values():
    ref = frames(value=0)
    dist = ref.copy()
    dist[0] = 1                   # every sample off by 1: MSE 1
    dist[1, ..., 0] = 3           # one channel off by 3: MSE 9 / 3 = 3
    got = psnr_rgb(ref, dist)
    assert got == pytest.approx([10 * np.log10(255**2), 10 * np.log10(255**2 / 3)], abs=1e-12)


def test_sequence_mean_is_mean_of_frames():
    ref = frames(t=2)
    dist = ref.copy()
    dist[1] = 10
    per = psnr_rgb(ref, dist)
    assert per[0] == PSNR_CAP and per[1] == pytest.approx(20 * np.log10(25.5))
    assert per.mean() == pytest.approx((PSNR_CAP + 20 * np.log10(25.5)) / 2)


@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020nc"])
def test_y_of_grey_is_studio_swing(matrix):
    black, white = frames(value=0), frames(value=255)
    assert np.allclose(rgb_to_y(black, matrix), 16.0)
    assert np.allclose(rgb_to_y(white, matrix), 235.0)
    # Y differs by 219 code values: PSNR = 20 log10(255 / 219)
    assert psnr_y(black, white, matrix) == pytest.approx([20 * np.log10(255 / 219)] * 2)


def test_y_of_primaries_matches_rgb2ycbcr():
    px = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]], dtype=np.uint8)
    # MATLAB rgb2ycbcr (BT.601): Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1]
    assert rgb_to_y(px, "bt601")[0, 0] == pytest.approx([81.481, 144.553, 40.966], abs=1e-9)
    assert rgb_to_y(px, "bt709")[0, 0] == pytest.approx(16 + 219 * np.array([0.2126, 0.7152, 0.0722]))


@pytest.mark.parametrize("matrix,cs", [("bt601", av.video.reformatter.Colorspace.ITU601),
                                       ("bt709", av.video.reformatter.Colorspace.ITU709)])
def test_y_matches_swscale_y_plane(matrix, cs):
    """Y from RGB is the Y plane swscale makes from the same RGB (limited range), to rounding."""
    rgb = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    yuv = frame.reformat(format="yuv444p", dst_colorspace=cs,
                         dst_color_range=av.video.reformatter.ColorRange.MPEG)
    y_plane = yuv.to_ndarray()[0].astype(np.float64)
    assert np.abs(rgb_to_y(rgb[None], matrix)[0] - y_plane).max() <= 1.0


def test_rejects_bad_input():
    a = frames()
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_rgb(a, a[:1])
    with pytest.raises(ValueError, match="uint8"):
        psnr_rgb(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="unknown luma matrix"):
        psnr_y(a, a, matrix="xyz")
