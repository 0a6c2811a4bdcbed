"""What a user gets from `vtoken encode --bpp X --temporal-factor auto --refine N`: the grid
chosen on unsearched trials, then the stream searched, against the same auto without the
search and against x265, at the same bpp targets.

Each reference is coded as `vtoken bench --bpp-targets` codes it (vtoken.bench.learned.run_vtoken)
and scored on every frame with the bench's RGB conversion and LPIPS. Points go to a JSON-lines
log as they finish, targets in the outer loop, so an interrupted run keeps every clip's lower
targets and a rerun with the same log resumes. The x265 points and the unsearched auto points
are read from a `vtoken bench --bpp-targets ...` results.json of the same references (`--base`);
BD-rates use only the targets measured here on both sides.

    python benchmarks/auto_refine_probe.py NAME=REF.y4m [...] --base results.json
        [--targets 0.002,0.004,0.008,0.016] [--steps 8] [--device cpu] [--log points.jsonl]
        [--out results.md]

`vtoken bench` leaves its references (33 frames at 640x360) in .cache/bench/refs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def measure(ref: Path, target: float, steps: int, device: str, workdir: str) -> dict:
    """One auto point: bpp, mean LPIPS and PSNR, the grid chosen, encode seconds."""
    from vtoken.bench.learned import run_vtoken
    from vtoken.bench.measure import quality
    from vtoken.bench.yuv import read_y4m, yuv420_to_rgb

    out = run_vtoken(ref, None, workdir, device, temporal_factor="auto", bpp=target, refine=steps)
    rgb = yuv420_to_rgb(read_y4m(ref)[1])
    q = quality(rgb, out.frames, device, ("psnr_rgb", "lpips"))
    t, h, w = rgb.shape[:3]
    return {"target": target, "bytes": out.bytes, "bpp": out.bytes * 8 / (t * h * w),
            "lpips": sum(q["lpips"]) / t, "psnr_rgb": sum(q["psnr_rgb"]) / t,
            "factor": out.settings["temporal_factor"], "encode_s": out.encode_seconds}


def base_points(results: Path, clip: str) -> tuple[list[dict], dict[float, dict]]:
    """(x265 records, unsearched auto records by target) of `clip` in a bench results.json."""
    recs = [r for r in json.loads(results.read_text())["results"] if r["clip"] == clip]
    hevc = [r for r in recs if r["codec"] == "hevc" and r["config"] == "default"]
    auto = {float(r["quality"]): r for r in recs if r["codec"] == "vtoken" and r["config"] == "auto"}
    return hevc, auto


def report(points: list[dict], base: Path, steps: int, command: str) -> str:
    from vtoken.metrics.bdrate import bd_metric, bd_rate

    def xy(rs):
        rs = sorted(rs, key=lambda r: r["bpp"])
        return [r["bpp"] for r in rs], [r["lpips"] if "lpips" in r else r["metrics"]["lpips"] for r in rs]

    lines = [f"# `vtoken encode --temporal-factor auto --refine {steps}` at bpp targets", "", f"`{command}`", "",
             "| clip | target | grid | bpp | LPIPS | PSNR RGB | unsearched auto: grid, bpp, LPIPS | encode s |",
             "|---|---|---|---|---|---|---|---|"]
    rows = ["", "| clip | targets | LPIPS BD-rate vs x265 | BD-metric vs x265 | unsearched auto: BD-rate, "
                "BD-metric vs x265 | searched vs unsearched BD-rate |", "|---|---|---|---|---|---|"]
    totals = []
    for clip in dict.fromkeys(p["clip"] for p in points):
        mine = sorted((p for p in points if p["clip"] == clip), key=lambda p: p["target"])
        hevc, auto = base_points(base, clip)
        for p in mine:
            a = auto.get(p["target"])
            plain = "-" if a is None else (f"{a['settings']['temporal_factor']}, {a['bpp']:.4f}, "
                                           f"{a['metrics']['lpips']:.4f}")
            lines.append(f"| {clip} | {p['target']:g} | {p['factor']} | {p['bpp']:.4f} | {p['lpips']:.4f} | "
                         f"{p['psnr_rgb']:.2f} | {plain} | {p['encode_s']:.0f} |")
        paired = [p for p in mine if p["target"] in auto]
        if len(paired) < 2:
            continue
        plain = [auto[p["target"]] for p in paired]
        r, m = bd_rate(*xy(hevc), *xy(paired), higher_is_better=False), bd_metric(*xy(hevc), *xy(paired))
        r0, m0 = bd_rate(*xy(hevc), *xy(plain), higher_is_better=False), bd_metric(*xy(hevc), *xy(plain))
        d = bd_rate(*xy(plain), *xy(paired), higher_is_better=False)
        totals.append((r.value, m.value, r0.value, m0.value, d.value))
        fmt = lambda v, unit: "-" if v is None else f"{v:+.1f} %" if unit == "%" else f"{v:+.4f}"
        shown = ", ".join(f"{p['target']:g}" for p in paired)
        rows.append(f"| {clip} | {shown} | {fmt(r.value, '%')} | "
                    f"{fmt(m.value, '')} | {fmt(r0.value, '%')}, {fmt(m0.value, '')} | {fmt(d.value, '%')} |")
    if totals and all(v is not None for t in totals for v in t):
        mean = [sum(t[i] for t in totals) / len(totals) for i in range(5)]
        rows.append(f"| mean of {len(totals)} | | {mean[0]:+.1f} % | {mean[1]:+.4f} | {mean[2]:+.1f} %, "
                    f"{mean[3]:+.4f} | {mean[4]:+.1f} % |")
    return "\n".join(lines + rows) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("refs", nargs="+", help="NAME=reference.y4m (NAME: the clip's name in --base)")
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--targets", default="0.002,0.004,0.008,0.016")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--log", type=Path, default=Path("auto_refine_points.jsonl"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    refs = [(spec.partition("=")[0], Path(spec.partition("=")[2])) for spec in a.refs]
    targets = [float(t) for t in a.targets.split(",")]
    points = [json.loads(line) for line in a.log.read_text().splitlines()] if a.log.exists() else []
    done = {(p["clip"], p["target"]) for p in points}
    with tempfile.TemporaryDirectory(prefix="vtoken-auto-refine-") as tmp:
        for target in targets:
            for name, ref in refs:
                if (name, target) in done:
                    continue
                p = {"clip": name, **measure(ref, target, a.steps, a.device, tmp)}
                points.append(p)
                with a.log.open("a") as f:
                    f.write(json.dumps(p) + "\n")
                print(json.dumps(p), flush=True)
    command = (f"python benchmarks/auto_refine_probe.py {' '.join(n + '=...' for n, _ in refs)} --base "
               f"{a.base.parent.name}/results.json --targets {a.targets} --steps {a.steps} --device {a.device}")
    text = report(points, a.base, a.steps, command)
    if a.out:
        Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
