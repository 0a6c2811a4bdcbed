"""Side-by-side pictures: the same frame from the source, vtoken and x265 at about the same
rate, as a crop at full size (no scaling), so a reader judges the codecs by looking.

For each clip the benchmark picks one vtoken point (the middle of its plane sweep), the
vtoken-auto point nearest its rate where the run has rate targets, and the x265 point whose
bpp is nearest the first, re-encodes that x265 point (its frames are not kept in the cache),
and writes one PNG: the source's crop and theirs in a row, each titled with its codec, rate
and LPIPS."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CROP = 256  # side of the square crop, in source pixels


def pick_vtoken_point(records: list[dict], target_bpp: float | None = None) -> dict:
    """The vtoken record to show: the one nearest `target_bpp`, or else the middle of the
    sweep (a rate where both codecs are usually still visibly imperfect)."""
    points = sorted(records, key=lambda r: r["bpp"])
    if target_bpp is None:
        return points[len(points) // 2]
    return min(points, key=lambda r: abs(np.log(r["bpp"]) - np.log(target_bpp)))


def nearest_rate(records: list[dict], bpp: float) -> dict | None:
    """The record whose bpp is nearest `bpp` on a log scale (None when there is none)."""
    return min(records, key=lambda r: abs(np.log(r["bpp"]) - np.log(bpp)), default=None)


def busiest_crop(frame: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """Top-left corner of the size x size window with the most detail (sum of absolute
    horizontal and vertical luma differences), on a coarse grid: where codecs differ most."""
    h, w = frame.shape[:2]
    size_h, size_w = min(size, h), min(size, w)
    y = frame.astype(np.float32).mean(axis=2)
    detail = np.zeros_like(y)
    detail[:, 1:] += np.abs(np.diff(y, axis=1))
    detail[1:, :] += np.abs(np.diff(y, axis=0))
    integral = np.pad(detail.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(8, size // 8)
    best, corner = -1.0, (0, 0)
    for top in range(0, h - size_h + 1, step):
        for left in range(0, w - size_w + 1, step):
            s = (integral[top + size_h, left + size_w] - integral[top, left + size_w]
                 - integral[top + size_h, left] + integral[top, left])
            if s > best:
                best, corner = s, (top, left)
    return corner


def write_side_by_side(path: str | Path, frame_index: int, source: np.ndarray,
                       panels: list[tuple[str, np.ndarray]], size: int = CROP) -> Path:
    """One PNG: the source crop, then each (title, frame) panel's crop of the same window.
    Frames are uint8 [H, W, 3], all the clip's frame `frame_index` (for the title); the crop
    is taken at full size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top, left = busiest_crop(source, size)
    crops = [("source", source)] + panels
    n = len(crops)
    fig, axes = plt.subplots(1, n, figsize=(n * size / 100 + 0.4, size / 100 + 0.8), dpi=100)
    for ax, (title, frame) in zip(np.atleast_1d(axes), crops):
        ax.imshow(frame[top:top + size, left:left + size], interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"frame {frame_index}, crop {size}x{size} at ({left}, {top}), full size", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # the two-line panel titles stay clear of the suptitle
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def label(record: dict, name: str | None = None) -> str:
    """'<name> <param>=<q>:' over '<bpp> bpp, LPIPS <x>', a panel's title in two lines that fit
    its crop (name: the record's codec unless given, e.g. a vtoken series)."""
    m = record["metrics"]
    lp = f", LPIPS {m['lpips']:.3f}" if "lpips" in m else ""
    return f"{name or record['codec']} {record['quality_param']}={record['quality']}:\n{record['bpp']:.4f} bpp{lp}"
