"""MS-SSIM (Wang, Simoncelli, Bovik 2003) per frame, in numpy/scipy.

Settings are those of the authors' reference ``msssim.m``: 5 scales, weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), an 11x11 Gaussian window with sigma 1.5 applied as
'valid' filtering (no padding), K1 = 0.01, K2 = 0.03, L = 255, and 2x2 average pooling between
scales. The score is ``prod_{i<5} cs_i^{w_i} * ssim_5^{w_5}``.

Choices, stated because MS-SSIM numbers are only comparable when they match:

* Channel: by default luma, the same studio-swing Y as ``psnr_y`` (what codec papers
  report); ``channel="rgb"`` gives the mean of the three per-channel scores instead.
* Odd sizes are pooled with floor (the last row/column is dropped), like scikit-video and
  ``torch.nn.functional.avg_pool2d``; the MATLAB code would keep it as a half-filled row.
* Negative contrast-structure means (only for nearly uncorrelated images) are clamped to 0
  before the fractional powers, as pytorch-msssim and TensorFlow do, instead of giving NaN.
* scikit-video's ``msssim`` omits the exponent w_5 on the last-scale SSIM; we keep it, as the
  paper and the reference code do. ``ms_ssim_components`` exposes the per-scale terms so a
  test can reproduce scikit-video's variant exactly.

Frames must be at least 176 pixels in each dimension (11 pixels at the 5th scale).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .psnr import check_pair, rgb_to_y

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
PEAK = 255.0
MIN_SIZE = WINDOW * 2 ** (len(WEIGHTS) - 1)  # 176


def _gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * x * x / (sigma * sigma))
    return g / g.sum()


_GAUSS = _gaussian_window()


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian over the last two axes, keeping only fully covered positions."""
    y = ndimage.correlate1d(x, _GAUSS, axis=-2, mode="constant")
    y = ndimage.correlate1d(y, _GAUSS, axis=-1, mode="constant")
    h = WINDOW // 2
    return y[..., h:-h, h:-h]


def _ssim_cs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean SSIM and mean contrast-structure term per image of [N, H, W] float64 stacks."""
    c1, c2 = (K1 * PEAK) ** 2, (K2 * PEAK) ** 2
    mu_x, mu_y = _filter_valid(x), _filter_valid(y)
    sxx = _filter_valid(x * x) - mu_x * mu_x
    syy = _filter_valid(y * y) - mu_y * mu_y
    sxy = _filter_valid(x * y) - mu_x * mu_y
    cs_map = (2.0 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * cs_map
    return ssim_map.mean(axis=(-2, -1)), cs_map.mean(axis=(-2, -1))


def _pool2(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    return 0.25 * (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2])


def ms_ssim_components(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-scale terms of [N, H, W] planes in [0, 255]: (cs [N, 5], ssim [N, 5])."""
    if min(x.shape[-2:]) < MIN_SIZE:
        raise ValueError(f"MS-SSIM needs frames of at least {MIN_SIZE}x{MIN_SIZE}, got "
                         f"{x.shape[-1]}x{x.shape[-2]}")
    x, y = x.astype(np.float64), y.astype(np.float64)
    cs, ssim = [], []
    for scale in range(len(WEIGHTS)):
        s, c = _ssim_cs(x, y)
        ssim.append(s)
        cs.append(c)
        if scale + 1 < len(WEIGHTS):
            x, y = _pool2(x), _pool2(y)
    return np.stack(cs, axis=-1), np.stack(ssim, axis=-1)


def ms_ssim_planes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MS-SSIM of [N, H, W] planes with values in [0, 255], float64 [N]."""
    cs, ssim = ms_ssim_components(x, y)
    cs = np.maximum(cs[:, :-1], 0.0)
    last = np.maximum(ssim[:, -1], 0.0)
    return np.prod(cs ** WEIGHTS[:-1], axis=-1) * last ** WEIGHTS[-1]


def ms_ssim(ref: np.ndarray, dist: np.ndarray, channel: str = "y", batch: int = 8,
            matrix: str = "bt601") -> np.ndarray:
    """Per-frame MS-SSIM of uint8 [T, H, W, 3] RGB frames, float64 [T] in [0, 1].

    channel: "y" (studio-swing luma with ``matrix``, as ``psnr_y``; the default) or "rgb"
    (mean over R, G, B).
    Frames are processed ``batch`` at a time to bound the float64 temporaries.
    """
    check_pair(ref, dist)
    if channel not in ("y", "rgb"):
        raise ValueError(f"channel must be 'y' or 'rgb', got {channel!r}")
    out = []
    for i in range(0, ref.shape[0], max(1, batch)):
        r, d = ref[i:i + batch], dist[i:i + batch]
        if channel == "y":
            out.append(ms_ssim_planes(rgb_to_y(r, matrix), rgb_to_y(d, matrix)))
        else:
            t = r.shape[0]
            planes_r = np.moveaxis(r, -1, 1).reshape(t * 3, *r.shape[1:3])
            planes_d = np.moveaxis(d, -1, 1).reshape(t * 3, *d.shape[1:3])
            out.append(ms_ssim_planes(planes_r, planes_d).reshape(t, 3).mean(axis=1))
    return np.concatenate(out) if out else np.zeros(0)
