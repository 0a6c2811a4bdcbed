"""Does an encoder change gain on every metric, or only on the one it optimises? BD-rates of one
vtoken series against another, per clip, on each metric the bench records (LPIPS, MS-SSIM,
PSNR-RGB, PSNR-Y), from two `vtoken bench` results.csv files. The encoder's search (refine.py)
minimises LPIPS + L1: a gain on LPIPS alone would be the metric's, not the picture's.

    python benchmarks/metric_crosscheck.py ANCHOR/results.csv TEST/results.csv
        [--anchor-config default] [--test-config default] [--out results.md]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from vtoken.metrics.bdrate import bd_rate

import clip_probe

METRICS = (("lpips", False), ("ms_ssim", True), ("psnr_rgb", True), ("psnr_y", True))


def series(path: Path, config: str, codec: str = "vtoken") -> dict[str, list[dict]]:
    """The points of one codec and config per clip, by rate (refine_steps.py reads them too)."""
    out: dict[str, list[dict]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["codec"] == codec and row["config"] == config:
                out.setdefault(row["clip"], []).append(row)
    return {clip: sorted(rows, key=lambda r: float(r["bpp"])) for clip, rows in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("anchor", type=Path)
    ap.add_argument("test", type=Path)
    ap.add_argument("--anchor-config", default="default")
    ap.add_argument("--test-config", default="default")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    anchor, test = series(args.anchor, args.anchor_config), series(args.test, args.test_config)
    lines = ["# BD-rate of one vtoken series against another on every metric", "",
             f"`python benchmarks/metric_crosscheck.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
             "Negative: the test series needs fewer bits for the same quality; '-' where a curve is not "
             "monotone or the curves do not overlap.", "",
             "| clip | " + " | ".join(m for m, _ in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for clip in [c for c in anchor if c in test]:
        cells = []
        for metric, higher in METRICS:
            # A metric the bench did not compute (an empty cell) gives no BD-rate.
            a = [r for r in anchor[clip] if r.get(metric)]
            t = [r for r in test[clip] if r.get(metric)]
            res = bd_rate([float(r["bpp"]) for r in a], [float(r[metric]) for r in a],
                          [float(r["bpp"]) for r in t], [float(r[metric]) for r in t], higher_is_better=higher)
            cells.append("-" if res.value is None else f"{res.value:+.1f} %")
        lines.append(f"| {clip} | " + " | ".join(cells) + " |")
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
