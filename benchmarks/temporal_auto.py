"""What `--temporal-factor auto` buys at a bpp target: each clip is encoded at each target on
the model's own time grid and with auto (the first chunk tried on every grid, vtoken.codec.
factor_choice), both decoded and scored with LPIPS against the source; one line per clip and
target: rate, LPIPS, the grid auto chose with its trials, and the encode's wall time (`vtoken
encode`'s own, model load excluded; before 2026-12-06 the column also held the decode and LPIPS).

    python benchmarks/temporal_auto.py [NAME=]CLIP.y4m [...] [--names a,b,...] [--bpp 0.04,0.08,0.12]
        [--model NAME|JSON] [--device cpu] [--chunk-frames 17] [--out results.md]

The clips are taken as they are (all their frames); `vtoken bench` leaves its references
(33 frames at 640x360) in .cache/bench/refs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import clip_probe


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--bpp", default="0.04,0.08,0.12")
    ap.add_argument("--model")
    ap.add_argument("--chunk-frames", type=int, default=None,
                    help="frames per chunk (vtoken encode --chunk-frames; 33 lets auto try factor 32)")
    ap.add_argument("--refine", type=int, default=0,
                    help="the encoder's search steps, both encodes (0, as the results this made: auto's choice "
                         "alone against the model's grid; vtoken encode searches auto by default)")
    args = ap.parse_args(argv)
    from vtoken import defaults

    targets = [float(t) for t in args.bpp.split(",")]
    clips = clip_probe.named_clips(ap, args)
    lines = clip_probe.header("--temporal-factor auto against the model's grid at a bpp target", "temporal_auto.py",
                              argv, args.device, f"model {args.model or 'the default'}; chunks of "
                              f"{args.chunk_frames or defaults.CHUNK_FRAMES} frames; --refine {args.refine}")
    lines += ["", "| clip | target bpp | grid | bpp | LPIPS | encode s | auto's trials on the first chunk (grid: bpp, "
              "LPIPS) |", "|---|---|---|---|---|---|---|"]
    options = {"refine": args.refine, **({"chunk_frames": args.chunk_frames} if args.chunk_frames else {})}
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in clips:
            ref = clip_probe.frames(clip)
            for target in targets:
                for factor in (None, "auto"):
                    res, _, score = clip_probe.coded(clip, ref, Path(tmp) / "x.mvt", args.device, model=args.model,
                                                     bpp=target, temporal_factor=factor, **options)
                    seconds = res.seconds  # the encode alone (the decode and scoring here are not its cost)
                    grid = f"auto: {res.temporal_factor}" if factor else str(res.temporal_factor)
                    tried = ", ".join(f"{t['factor']}: {t['bpp']:.4f}, {t['lpips']:.3f}" for t in res.factor_trials)
                    lines.append(f"| {name} | {target} | {grid} | {res.bpp:.4f} | {score:.4f} | {seconds:.1f} | "
                                 f"{tried or '-'} |")
                    print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
