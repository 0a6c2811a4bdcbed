"""The encoder search's rate term (vtoken.codec.refine, defaults.REFINE_RATE): what charging
the search for the code length of its flips does to bytes and LPIPS at fixed planes.

Each reference is coded as `vtoken bench` codes it (vtoken.bench.learned.run_vtoken: the
default model, hold and chunks, `--refine STEPS`) at each plane count and rate weight, decoded
and scored on every frame with the bench's own RGB conversion and LPIPS. Weight 0 is the
search without the term: measured, or with `--base` read from a `vtoken bench --refine STEPS`
results.json of the same references (the same encode, so the same bytes: the search is
deterministic on one machine). Without a BD-rate over many
points, a weight is judged at each plane count by the LPIPS it gives plus the clip's own
LPIPS per doubling of the rate (from the weight-0 points) times log2 of its bytes: lower wins.

    python benchmarks/refine_rate_probe.py [NAME=]REF.y4m [...] [--planes 8,32]
        [--weights 0,0.5,1] [--steps 8] [--device cpu] [--base results.json] [--out results.md]

`vtoken bench` leaves its references (33 frames at 640x360) in .cache/bench/refs.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path


def measure(ref: Path, planes: int, weight: float, steps: int, device: str, workdir: str) -> dict:
    """bpp, mean LPIPS and encode seconds of `ref` coded at `planes` with the search's rate weight."""
    from vtoken import defaults
    from vtoken.bench.learned import run_vtoken
    from vtoken.bench.measure import quality
    from vtoken.bench.yuv import read_y4m, yuv420_to_rgb

    saved = defaults.REFINE_RATE
    defaults.REFINE_RATE = weight  # the pipeline reads it per stream
    try:
        out = run_vtoken(ref, planes, workdir, device, refine=steps)
    finally:
        defaults.REFINE_RATE = saved
    rgb = yuv420_to_rgb(read_y4m(ref)[1])
    lpips = quality(rgb, out.frames, device, ("lpips",))["lpips"]
    t, h, w = rgb.shape[:3]
    return {"bytes": out.bytes, "bpp": out.bytes * 8 / (t * h * w), "lpips": sum(lpips) / len(lpips),
            "encode_s": out.encode_seconds}


def from_bench(results: Path, clip: str, planes: int, steps: int) -> dict:
    """The weight-0 point of `clip` at `planes` from a bench run with `--refine steps`."""
    import json

    for r in json.loads(results.read_text())["results"]:
        if (r["codec"], r["config"], r["clip"], r["quality"]) == ("vtoken", "default", clip, planes) \
                and r["settings"].get("refine") == steps:
            return {"bytes": r["bytes"], "bpp": r["bpp"], "lpips": r["metrics"]["lpips"],
                    "encode_s": r["timings"]["encode_s"]}
    raise SystemExit(f"{results}: no vtoken point of {clip} at {planes} planes with --refine {steps}")


def slope(points: dict[int, dict]) -> float:
    """The clip's LPIPS gained per doubling of the rate between its lowest and highest plane
    counts (weight-0 points)."""
    lo, hi = points[min(points)], points[max(points)]
    return (lo["lpips"] - hi["lpips"]) / math.log2(hi["bpp"] / lo["bpp"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("refs", nargs="+", help="[NAME=]reference.y4m")
    ap.add_argument("--planes", default="8,32")
    ap.add_argument("--weights", default="0,0.5,1")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--base", type=Path, default=None, help="weight 0 from this bench results.json")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    planes = [int(p) for p in a.planes.split(",")]
    weights = [float(w) for w in a.weights.split(",")]
    if (0.0 not in weights and a.base is None) or len(planes) < 2:
        ap.error("--weights must include 0 (the reference for the others) unless --base gives it, and --planes "
                 "at least two counts")
    weights = [0.0] + [w for w in weights if w != 0.0]
    lines = [f"# The encoder search's rate term: `python benchmarks/refine_rate_probe.py ... --planes {a.planes} "
             f"--weights {a.weights} --steps {a.steps} --device {a.device}"
             f"{' --base ' + a.base.parent.name + '/results.json' if a.base else ''}`", "",
             "score = LPIPS + (the clip's LPIPS per doubling of the rate at weight 0) x log2(bpp); lower is better. "
             "Rows against weight 0 at the same planes.", "",
             "| clip | planes | weight | bpp | bytes vs 0 | LPIPS | LPIPS vs 0 | score vs 0 | encode s |",
             "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="vtoken-rate-probe-") as tmp:
        for spec in a.refs:
            name, _, path = spec.rpartition("=")
            ref = Path(path)
            name = name or ref.stem
            got = {w: {p: from_bench(a.base, name, p, a.steps) if (w == 0.0 and a.base) else
                       measure(ref, p, w, a.steps, a.device, tmp) for p in planes} for w in weights}
            s = slope(got[0.0])
            for p in planes:
                base = got[0.0][p]
                for w in weights:
                    r = got[w][p]
                    score = (r["lpips"] - base["lpips"]) + s * math.log2(r["bpp"] / base["bpp"])
                    lines.append(f"| {name} | {p} | {w:g} | {r['bpp']:.4f} | {r['bytes'] / base['bytes'] - 1:+.1%} | "
                                 f"{r['lpips']:.4f} | {r['lpips'] - base['lpips']:+.4f} | {score:+.4f} | "
                                 f"{r['encode_s']:.0f} |")
            print("\n".join(lines[-len(planes) * len(weights):]), flush=True)
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
