"""Rate-distortion plots (matplotlib, Agg backend: no display needed): one panel per clip,
one curve per codec and configuration, bpp on a log axis."""

from __future__ import annotations

from pathlib import Path

from ..metrics.registry import METRICS
from .curves import AUTO, curves

# fixed colours so a codec looks the same in every plot; configs differ by line style
# (vtoken-auto, the encoder's own choice at rate targets, must not pass for one of the grids)
COLORS = {"vtoken": "#d62728", "hevc": "#1f77b4", "vvc": "#2ca02c", "av1": "#9467bd", "vtoken-best": "#ff7f0e",
          "vtoken-auto": "#000000"}
STYLES = {"default": "-", "lowdelay": "--", "t2": ":", "t1": "-.", "best": "-", AUTO: "--"}


def rd_plot(results: list[dict], metric: str, path: str | Path) -> bool:
    """Write an RD plot of `metric` against bpp; False when no record has the metric."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cv = curves([r for r in results if metric in r["metrics"]])
    if not cv:
        return False
    label, higher = METRICS[metric]
    n = len(cv)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for ax, (clip, per) in zip(axes.flat, cv.items()):
        for name, recs in per.items():
            codec, config = recs[0]["codec"], recs[0]["config"]
            ax.plot([r["bpp"] for r in recs], [r["metrics"][metric] for r in recs],
                    STYLES.get(config, ":"), marker="o", ms=3.5, lw=2.2 if codec == "vtoken" else 1.4,
                    color=COLORS.get(name, COLORS.get(codec, "0.3")), label=name)
        ax.set_xscale("log")
        ax.set_title(clip, fontsize=10)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label + ("" if higher else "  (lower is better)"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    first = results[0]
    fig.suptitle(f"{label} vs rate, {first['frames']} frames at {first['width']}x{first['height']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
