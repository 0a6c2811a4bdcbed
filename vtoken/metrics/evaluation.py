"""All the metrics of one decoded sequence against its reference, streamed in batches."""

from __future__ import annotations

import itertools
from typing import Iterable, Iterator

import numpy as np

from .msssim import MIN_SIZE as MS_SSIM_MIN_SIZE
from .msssim import ms_ssim
from .psnr import check_pair, psnr_rgb, psnr_y
from .registry import METRICS



def _chunks(frames) -> Iterator[np.ndarray]:
    if isinstance(frames, np.ndarray):
        yield frames
    else:
        yield from frames


def _rebatch(frames, batch: int) -> Iterator[np.ndarray]:
    """Batches of exactly ``batch`` frames (the last may be shorter) from chunks of any size."""
    buf, n = [], 0
    for chunk in _chunks(frames):
        buf.append(chunk)
        n += len(chunk)
        while n >= batch:
            joined = np.concatenate(buf)
            yield joined[:batch]
            buf, n = [joined[batch:]], n - batch
    if n:
        yield np.concatenate(buf)


def paired_batches(ref: np.ndarray | Iterable[np.ndarray], dist: np.ndarray | Iterable[np.ndarray],
                   batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Aligned (ref, dist) batches of at most ``batch`` frames from two arrays or two iterables
    of uint8 [t, H, W, 3] chunks (chunk sizes may differ between the two)."""
    for r, d in itertools.zip_longest(_rebatch(ref, batch), _rebatch(dist, batch)):
        if r is None or d is None or len(r) != len(d):
            raise ValueError("reference and distorted sequences differ in length")
        yield r, d


def evaluate(ref_frames, dist_frames, device="cpu", *, batch: int = 8, lpips: bool = True,
             lpips_model=None, matrix: str = "bt601") -> dict:
    """Per-frame PSNR-RGB, PSNR-Y, MS-SSIM (Y) and LPIPS, and their sequence means.

    ref_frames, dist_frames: uint8 [T, H, W, 3] RGB arrays, or iterables of such chunks (frames
    are processed ``batch`` at a time, so a whole sequence never has to be in memory).
    matrix: the YUV->RGB matrix the frames were made with, for the luma of PSNR-Y and MS-SSIM.
    Returns ``{"frames": T, "per_frame": {name: float64 [T] or None}, "mean": {name: float or
    None}, "notes": {name: why it is None}}`` with names in ``METRICS``. MS-SSIM is None for
    frames under 176x176; LPIPS is None when ``lpips=False``.
    """
    per: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    notes: dict[str, str] = {}
    if not lpips:
        notes["lpips"] = "not computed (lpips=False)"
    elif lpips_model is None:
        from .lpips import get_lpips

        lpips_model = get_lpips(device)
    total = 0
    for r, d in paired_batches(ref_frames, dist_frames, max(1, batch)):
        check_pair(r, d)
        total += len(r)
        per["psnr_rgb"].append(psnr_rgb(r, d))
        per["psnr_y"].append(psnr_y(r, d, matrix))
        if min(r.shape[1:3]) >= MS_SSIM_MIN_SIZE:
            per["ms_ssim"].append(ms_ssim(r, d, batch=batch, matrix=matrix))
        else:
            notes["ms_ssim"] = f"frames smaller than {MS_SSIM_MIN_SIZE}x{MS_SSIM_MIN_SIZE}"
        if lpips:
            from .lpips import lpips_frames

            per["lpips"].append(lpips_frames(r, d, batch=batch, model=lpips_model))
    if total == 0:
        raise ValueError("no frames to evaluate")
    per_frame = {m: (np.concatenate(v) if v and m not in notes else None) for m, v in per.items()}
    mean = {m: (float(np.mean(v)) if v is not None else None) for m, v in per_frame.items()}
    return {"frames": total, "per_frame": per_frame, "mean": mean, "notes": notes}
