"""Quality and cost of one coded point: bpp, per-frame metrics, and process memory helpers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..metrics.registry import METRICS


def bpp(nbytes: int, frames: int, width: int, height: int) -> float:
    """Bits per pixel of a whole coded stream: bytes x 8 / (frames x width x height)."""
    if frames <= 0 or width <= 0 or height <= 0:
        raise ValueError("frames, width and height must be positive")
    return nbytes * 8.0 / (frames * width * height)


def quality(ref: np.ndarray, dist: np.ndarray, device: str = "cpu", metrics=tuple(METRICS)) -> dict[str, list[float]]:
    """Per-frame values of each metric for uint8 [T, H, W, 3] RGB frames, computed by
    vtoken.metrics.evaluate with the luma matrix the RGB was made with. A metric that is
    undefined for these frames (MS-SSIM under 176x176) is left out, not faked."""
    from ..media.color import decode_matrix
    from ..metrics.evaluation import evaluate

    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metric {sorted(unknown)[0]!r}; use one of {', '.join(METRICS)}")
    matrix = "bt709" if decode_matrix(None, ref.shape[2], ref.shape[1]) == "bt709" else "bt601"
    res = evaluate(ref, dist, device, lpips="lpips" in metrics, matrix=matrix)
    return {name: [float(v) for v in np.asarray(res["per_frame"][name], dtype=np.float64)]
            for name in metrics if res["per_frame"].get(name) is not None}


def means(per_frame: dict[str, list[float]]) -> dict[str, float]:
    """Sequence value of each metric: the mean of its per-frame values."""
    return {k: float(np.mean(v)) for k, v in per_frame.items() if len(v)}


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) so the next reading covers one step only.
    Linux >= 4.0 (clear_refs 5); False where unsupported, and the reading is then the
    process's high-water mark so far."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float | None:
    """This process's peak RSS in MiB (VmHWM), or ru_maxrss where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except (ImportError, OSError):
        return None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
