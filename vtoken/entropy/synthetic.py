"""Synthetic LFQ-like bit-planes for tests and benchmarks (no model needed).

Bits are signs of smooth random fields: K channels mixed from a few shared smooth fields (so
planes are correlated, as LFQ channels of one image are), a moving region that slides by a
few latent pixels per frame over a static background, and weak per-frame jitter that flips
bits near zero crossings (as a real encoder's noise does).
"""

from __future__ import annotations

import numpy as np


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    h, w = shape
    noise = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2 * (np.pi * scale) ** 2 * (fy**2 + fx**2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(h, w))
    return out / (out.std() + 1e-12)


def smooth_bits(
    planes: int,
    frames: int,
    h: int,
    w: int,
    *,
    seed: int = 0,
    moving: float = 0.3,
    jitter: float = 0.05,
    scale: float = 2.0,
) -> np.ndarray:
    """uint8 [planes, frames, h, w]: smooth, partly moving bits. `moving` is the fraction of the
    width that moves (0: fully static except jitter); `jitter` the per-frame noise level."""
    rng = np.random.default_rng(seed)
    step = 2
    ch, cw = h + step * frames + 1, w + step * frames + 1
    n_base = 6
    base = np.stack([_smooth_noise(rng, (ch, cw), scale) for _ in range(n_base)])
    mix = rng.standard_normal((planes, n_base)) / np.sqrt(n_base)
    own = np.stack([_smooth_noise(rng, (ch, cw), scale) for _ in range(planes)])
    z = np.tensordot(mix, base, axes=1) + 0.7 * own  # [planes, ch, cw]
    out = np.empty((planes, frames, h, w), dtype=np.uint8)
    x_move = int(round(w * (1 - moving)))
    for t in range(frames):
        frame = z[:, :h, :w].copy()
        if x_move < w:
            frame[:, :, x_move:] = z[:, t : t + h, step * t + x_move : step * t + w]
        if jitter > 0 and t > 0:
            frame += jitter * rng.standard_normal(frame.shape)
        out[:, t] = frame > 0
    return out
