"""How many search steps does a user need? The encoder's search (`vtoken encode --refine N`)
at a few step counts and learning rates, each a series of plane counts on the model's grid,
read as BD-rates against the unsearched stream and against x265 of a `vtoken bench` run.

    python benchmarks/refine_steps.py code [NAME=]CLIP.y4m [...] --steps 2 [--method flip] [--lr 0.08]
        [--planes 2,4,8,16,32,64] [--refine-loss lpips] [--lpips-stride 1] [--precision auto] [--model M]
        [--device cpu] --csv S.csv
    python benchmarks/refine_steps.py table BENCH/results.csv S1.csv [S2.csv ...] [--out results.md]

`code` writes one row per clip and plane count (the columns of the bench's results.csv that
metric_crosscheck.py reads, the encode's wall seconds, the steps, the search's method and its
learning rate (adam) or share of the bits flipped per step (flip), the loss and
the precision the search ran in, vtoken encode --precision resolved);
`table` takes the anchors from a bench run of the same clips (its unsearched model-grid
series `vtoken` and `hevc`). `vtoken bench` leaves its references (33 frames at 640x360) in
.cache/bench/refs.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import clip_probe
from metric_crosscheck import series

FIELDS = ["clip", "codec", "config", "bpp", "lpips", "ms_ssim", "psnr_rgb", "psnr_y", "encode_s", "steps", "lr",
          "refine_loss", "lpips_stride", "precision", "method", "flip_steps", "flip_share"]


def code(args, clips) -> int:
    from vtoken import defaults

    before = defaults.REFINE_LR, defaults.REFINE_LPIPS_STRIDE, defaults.REFINE_METHOD
    # the search reads them when the encode makes its refiner
    defaults.REFINE_LR, defaults.REFINE_LPIPS_STRIDE, defaults.REFINE_METHOD = args.lr, args.lpips_stride, args.method
    try:
        _code(args, clips, [int(p) for p in args.planes.split(",")])
    finally:
        defaults.REFINE_LR, defaults.REFINE_LPIPS_STRIDE, defaults.REFINE_METHOD = before
    return 0


def _code(args, clips, planes: list[int]) -> None:
    """One row per clip and plane count into args.csv, each written as it is measured."""
    import numpy as np

    import vtoken
    from vtoken.codec.refine import flip_share, search_split
    from vtoken.metrics.evaluation import evaluate

    flips, moves = search_split(args.steps)
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        for name, path in clips:
            ref = clip_probe.frames(path)
            out = Path(args.csv).with_suffix(".mvt")
            for p in planes:
                t = time.perf_counter()
                res = vtoken.encode(path, out, model=args.model, planes=p, refine=args.steps, device=args.device,
                                    refine_loss=args.refine_loss, precision=args.precision, overwrite=True)
                seconds = time.perf_counter() - t
                dec = np.concatenate(list(vtoken.decode_frames(out, model=args.model, device=args.device,
                                                               precision=args.precision)))
                m = evaluate(ref, dec, args.device)["mean"]
                w.writerow(dict(clip=name, codec="vtoken", config="default", bpp=res.bpp, encode_s=round(seconds, 1),
                                steps=args.steps, lr=args.lr if moves else "-", method=args.method,
                                flip_steps=flips, flip_share=flip_share(flips) if flips else "-",
                                refine_loss=args.refine_loss,
                                lpips_stride=args.lpips_stride if args.refine_loss == "lpips" else "-",
                                precision=vtoken.info(out)["extra"].get("refine_precision", "-"),
                                **{k: m[k] for k in FIELDS[4:8]}))
                f.flush()
            out.unlink(missing_ok=True)


def table(args, argv) -> int:
    from vtoken.metrics.bdrate import bd_metric, bd_rate

    plain, x265 = series(args.bench, "default"), series(args.bench, "default", "hevc")

    def curve(rows):
        return [float(r["bpp"]) for r in rows], [float(r["lpips"]) for r in rows]

    def cell(values, fmt):
        return " / ".join("-" if v is None else fmt.format(v) for v in values)

    lines = ["# The encoder's search by steps: LPIPS BD-rates", "",
             f"- command: `python benchmarks/refine_steps.py {' '.join(argv)}`",
             "- per clip, in the order of the bench's clips; negative: fewer bits for the same LPIPS; "
             "'-' where the curves do not overlap", "",
             "| series | steps | method | lr / flips a step | loss | LPIPS stride | precision | encode s "
             "| vs unsearched % | vs x265 % | BD-metric vs x265 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in args.series:
        test = series(path, "default")
        clips = [c for c in plain if c in test and c in x265]
        rows = [r for c in clips for r in test[c]]
        if not rows:
            print(f"refine_steps.py: {path}: no clip in common with the bench's vtoken and hevc series", file=sys.stderr)
            return 1
        vs_plain = [bd_rate(*curve(plain[c]), *curve(test[c]), higher_is_better=False).value for c in clips]
        vs_x265 = [bd_rate(*curve(x265[c]), *curve(test[c]), higher_is_better=False).value for c in clips]
        metric = [bd_metric(*curve(x265[c]), *curve(test[c])).value for c in clips]
        secs = [float(r["encode_s"]) for r in rows if r.get("encode_s")]
        took = f"{min(secs):.0f}-{max(secs):.0f}" if secs else "-"
        first = rows[0]
        method = first.get("method") or "adam"  # series from before the flips: Adam's
        step = first.get("flip_share") if method == "flip" else first.get("lr")
        steps = int(first.get("steps") or 0)
        flips = int(first["flip_steps"]) if first.get("flip_steps") else steps  # before the split: all flips
        if method == "flip" and steps > flips:  # the flips, then Adam (refine.search_split)
            method, step = f"{flips} flip + {steps - flips} adam", f"{step} / {first.get('lr')}"
        lines.append(f"| {Path(path).name} | {first.get('steps') or '?'} | {method} | {step or '?'} | "
                     f"{first.get('refine_loss') or 'lpips'} | {first.get('lpips_stride') or 1} | "
                     f"{first.get('precision') or 'fp32'} | {took} | "
                     f"{cell(vs_plain, '{:+.1f}')} | "
                     f"{cell(vs_x265, '{:+.1f}')} | {cell(metric, '{:+.3f}')} |")
    return clip_probe.finish(lines, args.out)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["table"]:
        ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        ap.add_argument("bench", type=Path)
        ap.add_argument("series", type=Path, nargs="+")
        ap.add_argument("--out", type=Path)
        return table(ap.parse_args(argv[1:]), argv)
    if argv[:1] != ["code"]:
        print("usage: refine_steps.py code ... | table ... (see --help of each)", file=sys.stderr)
        return 2
    from vtoken import defaults

    ap = clip_probe.parser(__doc__)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--method", default=defaults.REFINE_METHOD, choices=defaults.REFINE_METHODS,
                    help="the search's method (vtoken.codec.refine): flip, or adam at --lr")
    ap.add_argument("--lr", type=float, default=0.08)
    ap.add_argument("--planes", default="2,4,8,16,32,64")
    ap.add_argument("--refine-loss", default=defaults.REFINE_LOSS, choices=defaults.REFINE_LOSSES)
    ap.add_argument("--lpips-stride", type=_positive, default=1,
                    help="LPIPS on every N-th frame of a slice per step, the offset moving (default 1: every frame)")
    ap.add_argument("--precision", default=defaults.PRECISION, choices=defaults.PRECISIONS,
                    help="vtoken encode / decode --precision (auto: the search and the decode in bf16 where the "
                         "hardware has it)")
    ap.add_argument("--model")
    ap.add_argument("--csv", type=Path, required=True)
    args = ap.parse_args(argv[1:])
    return code(args, clip_probe.named_clips(ap, args))


if __name__ == "__main__":
    raise SystemExit(main())
