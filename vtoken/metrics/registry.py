"""The one registry of quality metrics: name -> (label for tables and plots, higher is better).
evaluate() computes exactly these; the benchmark's records, tables and plots use these names."""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    label: str
    higher_is_better: bool


METRICS: dict[str, Metric] = {
    "psnr_rgb": Metric("PSNR RGB (dB)", True),
    "psnr_y": Metric("PSNR Y (dB)", True),
    "ms_ssim": Metric("MS-SSIM (Y)", True),
    "lpips": Metric("LPIPS (AlexNet v0.1)", False),
}
