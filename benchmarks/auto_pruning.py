"""Would `--temporal-factor auto` have chosen otherwise had its trials stopped at the first grid
scoring worse than the best so far (vtoken.codec.factor_choice.past_best)? Replays the trials
recorded by `vtoken bench --bpp-targets` (series vtoken-auto, settings.factor_trials) in every
results.json given, against choose() on all of them.

    python benchmarks/auto_pruning.py benchmarks/results/*/results.json [--out results.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vtoken.codec.factor_choice import FactorTrial, choose, past_best

import clip_probe


def replay(trials: list[FactorTrial], target: float) -> list[FactorTrial]:
    """The trials auto would have run with the rule: up to the first one past the best."""
    for n in range(1, len(trials) + 1):
        if past_best(trials[:n], target):
            return trials[:n]
    return trials


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    lines = ["# auto's trials stopped past the best grid, replayed on recorded trials", "",
             f"`python benchmarks/auto_pruning.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
             "| results | clip | target bpp | chosen from all trials | with the rule | trials run / recorded |",
             "|---|---|---|---|---|---|"]
    decisions = changed = recorded = skipped = 0
    for path in args.results:
        for r in json.loads(path.read_text())["results"]:
            if r.get("config") != "auto" or not r.get("settings", {}).get("factor_trials"):
                continue
            target = float(r["quality"])
            # The grids' trials only: shorter key spacings come after them and are not pruned.
            trials = [FactorTrial(t["factor"], t["bpp"], t["lpips"], t["planes"], t.get("at_target"))
                      for t in r["settings"]["factor_trials"] if t.get("chunk_frames") is None]
            run = replay(trials, target)
            full, pruned = choose(trials, target), choose(run, target)
            decisions, changed = decisions + 1, changed + (full != pruned)
            recorded, skipped = recorded + len(trials), skipped + len(trials) - len(run)
            lines.append(f"| {path.parent.name} | {r['clip']} | {target:g} | {full} | {pruned} | "
                         f"{len(run)} / {len(trials)} |")
    lines += ["", f"{decisions} decisions: {changed} changed by the rule; {skipped} of {recorded} trials skipped."]
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
