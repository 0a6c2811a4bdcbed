"""What a gain would be worth: the LPIPS BD-rate and BD-metric of vtoken against an anchor if
vtoken's measured curves were shifted by a uniform LPIPS gain and/or a uniform byte cut.

    python benchmarks/bd_sensitivity.py benchmarks/results/eval-cpu/results.json --anchor hevc

Reads a `vtoken bench` results.json and computes the BD table with the bench's own code
(`vtoken.bench.report.bd_table`), so the row with no gain and no cut reproduces the bench's."""

from __future__ import annotations

import argparse
import json

from vtoken.bench.report import bd_table


def shifted(results: list[dict], gain: float, cut: float) -> list[dict]:
    """The results with every vtoken point at (1 - cut) of its rate and `gain` lower LPIPS."""
    out = []
    for r in results:
        if r["codec"] == "vtoken":
            r = {**r, "bpp": r["bpp"] * (1 - cut), "metrics": {**r["metrics"], "lpips": r["metrics"]["lpips"] - gain}}
        out.append(r)
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="results.json of a vtoken bench run")
    ap.add_argument("--anchor", default="hevc", help="the anchor series, as the bench names it")
    ap.add_argument("--gains", default="0,0.01,0.02,0.03,0.05", help="LPIPS gains (subtracted at every point)")
    ap.add_argument("--cuts", default="0,0.2,0.4", help="fractions of the bytes saved at equal quality")
    args = ap.parse_args()
    results = json.load(open(args.results))["results"]
    first = True
    for gain in (float(g) for g in args.gains.split(",")):
        for cut in (float(c) for c in args.cuts.split(",")):
            rows = [r for r in bd_table(shifted(results, gain, cut), metrics=("lpips",))
                    if r["test"] == "vtoken" and r["anchor"] == args.anchor]
            clips = [r for r in rows if r["clip"] != "overall"]
            overall = next(r for r in rows if r["clip"] == "overall")
            if first:
                print(f"{'LPIPS gain':>10} {'byte cut':>8} {'BD-rate %':>10} {'BD-metric':>10}   "
                      f"per clip ({', '.join(r['clip'] for r in clips)})")
                first = False
            per = " / ".join(_fmt(r["bd_rate_pct"], "+.0f") for r in clips)
            print(f"{gain:10.3f} {cut:8.2f} {_fmt(overall['bd_rate_pct'], '+.1f'):>10} "
                  f"{_fmt(overall['bd_metric'], '+.3f'):>10}   {per}")


if __name__ == "__main__":
    main()
