"""What a gain would be worth: the LPIPS BD-rate and BD-metric of vtoken against an anchor if
vtoken's measured curves were shifted by a uniform LPIPS gain and/or a uniform byte cut.

    python benchmarks/bd_sensitivity.py benchmarks/results/eval-cpu/results.json --anchor hevc

Reads a `vtoken bench` results.json; BD values per clip as the bench computes them, averaged
over the clips where defined. The row with no gain and no cut reproduces the bench's own."""

from __future__ import annotations

import argparse
import json

import numpy as np

from vtoken.metrics.bdrate import bd_metric, bd_rate


def curves(results: list[dict], codec: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for clip in sorted({r["clip"] for r in results if r["codec"] == codec}):
        rows = sorted((r for r in results if r["clip"] == clip and r["codec"] == codec), key=lambda r: r["bpp"])
        out[clip] = (np.array([r["bpp"] for r in rows]), np.array([r["metrics"]["lpips"] for r in rows]))
    return out


def mean_defined(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="results.json of a vtoken bench run")
    ap.add_argument("--anchor", default="hevc")
    ap.add_argument("--gains", default="0,0.01,0.02,0.03,0.05", help="LPIPS gains (subtracted at every point)")
    ap.add_argument("--cuts", default="0,0.2,0.4", help="fractions of the bytes saved at equal quality")
    args = ap.parse_args()
    results = json.load(open(args.results))["results"]
    test, anchor = curves(results, "vtoken"), curves(results, args.anchor)
    clips = [c for c in test if c in anchor]
    print(f"{'LPIPS gain':>10} {'byte cut':>8} {'BD-rate %':>10} {'BD-metric':>10}   per clip ({', '.join(clips)})")
    for gain in (float(g) for g in args.gains.split(",")):
        for cut in (float(c) for c in args.cuts.split(",")):
            rates, metrics = [], []
            for clip in clips:
                (ar, am), (tr, tm) = anchor[clip], test[clip]
                rates.append(bd_rate(ar, am, tr * (1 - cut), tm - gain, higher_is_better=False).value)
                metrics.append(bd_metric(ar, am, tr * (1 - cut), tm - gain).value)
            r, m = mean_defined(rates), mean_defined(metrics)
            per = " / ".join("-" if v is None else f"{v:+.0f}" for v in rates)
            print(f"{gain:10.3f} {cut:8.2f} {'-' if r is None else f'{r:+.1f}':>10} {'-' if m is None else f'{m:+.3f}':>10}   {per}")


if __name__ == "__main__":
    main()
