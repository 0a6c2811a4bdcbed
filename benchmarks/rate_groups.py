"""What budgeting a key chunk for its group (vtoken/codec/rate.py) does at a bpp target: each
clip is encoded with `--bpp X` on each time grid twice, once as the encoder does (the key
chunk keeps the planes at which its group is projected to meet the target) and once with
every chunk budgeted alone (the controller before groups), decoded and scored with LPIPS;
per clip and grid, the LPIPS difference at equal rate (BD-metric) and the planes per chunk.

    python benchmarks/rate_groups.py [NAME=]CLIP.y4m [...] [--factors 16,4]
        [--bpp 0.002,0.003,0.004,0.006,0.008,0.012,0.016,0.024,0.032] [--device cpu] [--out results.md]

The clips are taken as they are (all their frames); `vtoken bench` leaves its references
(33 frames at 640x360) in .cache/bench/refs. Targets below 0.004 bpp are skipped on grids
finer than 8 (one plane is over them).
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import clip_probe


@contextmanager
def chunk_by_chunk():
    """The rate controller without groups: every chunk held to its own pixels' share."""
    from vtoken.codec.rate import RateController

    grouped, grouped_enough = RateController.choose, RateController.enough

    def alone(self, sizes, pixels, overhead=lambda planes: 0, dry_run=False, key=None, latent_frames=0):
        return grouped(self, sizes, pixels, overhead, dry_run)

    def enough_alone(self, sizes, pixels, overhead=lambda planes: 0, key=None, latent_frames=0):
        return grouped_enough(self, sizes, pixels, overhead)

    RateController.choose, RateController.enough = alone, enough_alone
    try:
        yield
    finally:
        RateController.choose, RateController.enough = grouped, grouped_enough


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--factors", default="16,4")
    ap.add_argument("--bpp", default="0.002,0.003,0.004,0.006,0.008,0.012,0.016,0.024,0.032")
    args = ap.parse_args(argv)
    import vtoken
    from vtoken.metrics.bdrate import bd_metric

    factors = [int(f) for f in args.factors.split(",")]
    targets = [float(t) for t in args.bpp.split(",")]
    clips = clip_probe.named_clips(ap, args)
    model = vtoken.load_model(device=args.device)
    lines = clip_probe.header("A key chunk budgeted for its group against every chunk budgeted alone, at bpp targets",
                              "rate_groups.py", argv, args.device, "the default model; default chunks (17 frames) and "
                              f"settings; {time.strftime('%Y-%m-%d', time.gmtime())}")
    lines += ["- LPIPS BD-metric: LPIPS with groups minus LPIPS alone at equal rate, over the rates both reach "
              "(negative: groups better)", "",
              "| clip | grid | BD-metric | per target: bpp, LPIPS, planes per chunk (groups / alone) |",
              "|---|---|---|---|"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in clips:
            ref = clip_probe.frames(clip)
            for factor in factors:
                runs = {}
                for mode in ("groups", "alone"):
                    points = runs[mode] = []
                    for target in targets:
                        if factor < 8 and target < 0.004:
                            continue
                        with chunk_by_chunk() if mode == "alone" else nullcontext():
                            res, _, score = clip_probe.coded(clip, ref, Path(tmp) / "x.mvt", args.device, model=model,
                                                             bpp=target, temporal_factor=factor)
                        points.append((res.bpp, score, res.planes))
                        print(name, factor, mode, target, f"{res.bpp:.5f}", f"{score:.4f}", res.planes, flush=True)
                g, a = runs["groups"], runs["alone"]
                bd = bd_metric([p[0] for p in a], [p[1] for p in a], [p[0] for p in g], [p[1] for p in g])
                cells = "; ".join(f"{pg[0]:.4f} {pg[1]:.3f} {pg[2]} / {pa[0]:.4f} {pa[1]:.3f} {pa[2]}"
                                  for pg, pa in zip(g, a))
                value = f"{bd.value:+.4f}" if bd.value is not None else f"- ({bd.reason})"
                lines.append(f"| {name} | {factor} | {value} | {cells} |")
    lines += ["", f"- wall time {time.perf_counter() - started:.0f} s"]
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
