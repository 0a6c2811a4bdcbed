"""What `--temporal-factor auto` buys at a bpp target: each clip is encoded at each target on
the model's own time grid and with auto (the first chunk tried on every grid, vtoken.codec.
factor_choice), both decoded and scored with LPIPS against the source; one line per clip and
target: rate, LPIPS, the grid auto chose with its trials, and the encode wall time.

    python benchmarks/temporal_auto.py CLIP.y4m [...] [--names a,b,...] [--bpp 0.04,0.08,0.12]
        [--model NAME|JSON] [--device cpu] [--chunk-frames 17] [--out results.md]

The clips are taken as they are (all their frames); `vtoken bench` leaves its references
(33 frames at 640x360) in .cache/bench/refs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--names", help="comma-separated names of the clips for the table (default: file names)")
    ap.add_argument("--bpp", default="0.04,0.08,0.12")
    ap.add_argument("--model")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chunk-frames", type=int, default=None,
                    help="frames per chunk (vtoken encode --chunk-frames; 33 lets auto try factor 32)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import numpy as np

    import vtoken
    from vtoken import defaults
    from vtoken.bench.env import machine
    from vtoken.media import VideoReader
    from vtoken.metrics.lpips import lpips_frames

    targets = [float(t) for t in args.bpp.split(",")]
    names = args.names.split(",") if args.names else [c.name for c in args.clips]
    if len(names) != len(args.clips):
        ap.error(f"{len(names)} names for {len(args.clips)} clips")
    m = machine()
    lines = ["# --temporal-factor auto against the model's grid at a bpp target", "",
             f"- command: `python benchmarks/temporal_auto.py {' '.join(argv or sys.argv[1:])}`",
             f"- machine: {m['cpu']}, {m['cores']} cores; device {args.device}; model "
             f"{args.model or 'the default'}; chunks of {args.chunk_frames or defaults.CHUNK_FRAMES} frames", "",
             "| clip | target bpp | grid | bpp | LPIPS | encode s | auto's trials on the first chunk (grid: bpp, LPIPS) |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in zip(names, args.clips):
            with VideoReader(clip) as r:
                ref = np.concatenate(list(r.chunks(64)))
            for target in targets:
                for factor in (None, "auto"):
                    out = Path(tmp) / "x.mvt"
                    start = time.perf_counter()
                    res = vtoken.encode(clip, out, model=args.model, bpp=target, device=args.device,
                                        temporal_factor=factor, overwrite=True,
                                        **({"chunk_frames": args.chunk_frames} if args.chunk_frames else {}))
                    seconds = time.perf_counter() - start
                    dec = np.concatenate(list(vtoken.decode_frames(out, device=args.device)))
                    score = float(lpips_frames(ref, dec[: len(ref)], args.device).mean())
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
