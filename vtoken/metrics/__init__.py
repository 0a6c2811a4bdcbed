"""Quality metrics and Bjøntegaard deltas for the benchmark.

Frames are uint8 [T, H, W, 3] RGB (the project's numpy contract). Per-frame functions return
float64 [T]; sequence values are means of per-frame values.

    psnr_rgb(ref, dist), psnr_y(ref, dist, matrix="bt601")       -> dB per frame (cap 100)
    ms_ssim(ref, dist, channel="y")                              -> MS-SSIM per frame
    LPIPS(), lpips_frames(ref, dist, device="cpu", batch=8)      -> AlexNet v0.1 LPIPS
    bd_rate(...), bd_metric(...)                                 -> BDResult(value, reason, interval)
    evaluate(ref, dist, device="cpu")                            -> all of the above, streamed

Torch is imported only when LPIPS is used (``LPIPS``, ``lpips_frames``, or ``evaluate`` with lpips=True).
"""

from .bdrate import BDResult, bd_metric, bd_rate
from .evaluation import evaluate
from .msssim import ms_ssim
from .psnr import PSNR_CAP, psnr_rgb, psnr_y
from .registry import METRICS, Metric

__all__ = ["psnr_rgb", "psnr_y", "PSNR_CAP", "ms_ssim", "LPIPS", "lpips_frames", "bd_rate",
           "bd_metric", "BDResult", "evaluate", "METRICS", "Metric"]

_LAZY = {"LPIPS": "lpips", "lpips_frames": "lpips"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
