"""PSNR per frame, on RGB and on luma (Y), for 8-bit frames ``uint8 [T, H, W, 3]``.

* ``psnr_rgb``: MSE over all pixels of all three channels, peak 255.
* ``psnr_y``: MSE over the luma plane, peak 255. Y is the 8-bit studio-swing luma a codec
  sees, ``Y = 16 + 219 * (Kr R + Kg G + Kb B) / 255`` (the MATLAB ``rgb2ycbcr`` convention),
  kept in float (not rounded). ``matrix`` must be the one the RGB frames were made with, so
  that Y computed from RGB is, up to rounding, the Y plane the codecs coded: pass the matrix
  name ``vtoken.media.color.decode_matrix`` chose (ffmpeg tag names are accepted:
  "smpte170m"/"bt470bg"/"bt601" -> BT.601, "bt709", "bt2020nc"). The default "bt601" is what
  vtoken.media (and swscale) use for untagged standard-definition video such as the 640x360
  benchmark reference.

PSNR of identical frames is infinite; it is capped at ``PSNR_CAP`` = 100 dB so sequence means
stay finite. For 8-bit data the largest finite PSNR of a 640x360 frame is about 106.5 dB, so
the cap only clips frames where a handful of samples are off by one code value. The sequence value is the
mean of the per-frame values (not the PSNR of the mean MSE), as in most codec papers.
"""

from __future__ import annotations

import numpy as np

PSNR_CAP = 100.0
PEAK = 255.0

# (Kr, Kb) of each supported luma matrix; Kg = 1 - Kr - Kb
LUMA_MATRICES = {
    "bt601": (0.299, 0.114), "smpte170m": (0.299, 0.114), "bt470bg": (0.299, 0.114),
    "bt709": (0.2126, 0.0722), "bt2020nc": (0.2627, 0.0593),
}


def check_pair(ref: np.ndarray, dist: np.ndarray) -> None:
    """Both must be uint8 [T, H, W, 3] of the same shape (the project's numpy frame contract)."""
    for name, a in (("ref", ref), ("dist", dist)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
            desc = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{name} must be uint8 [T, H, W, 3] RGB frames, got {desc}")
    if ref.shape != dist.shape:
        raise ValueError(f"ref and dist shapes differ: {ref.shape} vs {dist.shape}")


def rgb_to_y(frames: np.ndarray, matrix: str = "bt601") -> np.ndarray:
    """Studio-swing luma in [16, 235] as float64 [T, H, W] from uint8 [T, H, W, 3] RGB."""
    if matrix not in LUMA_MATRICES:
        raise ValueError(f"unknown luma matrix {matrix!r}; use one of {sorted(LUMA_MATRICES)}")
    kr, kb = LUMA_MATRICES[matrix]
    coeffs = np.array([kr, 1.0 - kr - kb, kb]) * (219.0 / 255.0)
    return 16.0 + frames.astype(np.float64) @ coeffs


def mse_to_psnr(mse: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """10 log10(peak^2 / mse), capped at PSNR_CAP (mse = 0 gives PSNR_CAP)."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(peak * peak / mse)
    return np.minimum(psnr, PSNR_CAP)


def psnr_rgb(ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Per-frame RGB PSNR in dB, float64 [T]."""
    check_pair(ref, dist)
    diff = ref.astype(np.float64) - dist.astype(np.float64)
    return mse_to_psnr(np.mean(diff * diff, axis=(1, 2, 3)))


def psnr_y(ref: np.ndarray, dist: np.ndarray, matrix: str = "bt601") -> np.ndarray:
    """Per-frame luma PSNR in dB, float64 [T] (Y as defined in the module docstring)."""
    check_pair(ref, dist)
    diff = rgb_to_y(ref, matrix) - rgb_to_y(dist, matrix)
    return mse_to_psnr(np.mean(diff * diff, axis=(1, 2)))
