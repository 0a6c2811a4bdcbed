"""Would a finer latent grid in space pay, without retraining? Each clip is resampled by a
factor s (bicubic), coded with the default model at each plane count, decoded, resampled back
to its own size (area average going down, bicubic going up) and scored against the source:
LPIPS and PSNR RGB, and the rate in bits per *source* pixel. At s = 2 the model's 1/8 latent
grid is 1/4 of the source's, at s = 0.5 it is 1/16: 4x or 1/4 the latent positions per
frame, so the same rate lands at a quarter or four times the planes.

    python benchmarks/spatial_probe.py [NAME=]CLIP.y4m [...] [--names a,b,...]
        [--scales 0.5,1,2] [--planes 4,8,16,32,64] [--device cpu] [--out results.md]
        [--bench RESULTS.json]

With --bench (a `vtoken bench` results.json holding the same clips, by name, and hevc), the
LPIPS BD figures against x265 of each vtoken series there, as they are and with this probe's
points at the scales other than 1 added (the Pareto front of both): what a grid choice that
included them could at best do to the figures.

The clips are taken as they are (all their frames); `vtoken bench` leaves its references
(33 frames at 640x360) in .cache/bench/refs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import clip_probe


def resample(frames, size):
    """uint8 [T, H, W, 3] -> uint8 [T, h, w, 3]: bicubic going up, area average going down."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).float().permute(0, 3, 1, 2)
    up = size[0] > frames.shape[1]
    y = F.interpolate(x, size=size, mode="bicubic" if up else "area", **({"align_corners": False} if up else {}))
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_pngs(frames, folder: Path) -> Path:
    import av

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for i, f in enumerate(frames):
        av.VideoFrame.from_ndarray(f, format="rgb24").to_image().save(folder / f"{i:06d}.png")
    return folder


def bd_with(bench: Path, points: dict) -> list[str]:
    """Lines of a table: LPIPS BD-rate / BD-metric against hevc per clip and their mean, for
    each vtoken series of the bench results, without and with the resampled points."""
    import json

    import numpy as np

    from vtoken.bench.curves import curves, pareto_front
    from vtoken.metrics.bdrate import bd_metric, bd_rate

    data = json.loads(bench.read_text())
    per_clip = curves(data["results"] if isinstance(data, dict) else data)
    extra = {}
    for (clip, scale), pts in points.items():
        if scale != 1:
            extra.setdefault(clip, []).extend({"bpp": b, "metrics": {"lpips": q}} for b, q in pts)
    clips = [c for c in per_clip if c in extra and "hevc" in per_clip[c]]
    series = [s for s in per_clip[clips[0]] if s.startswith("vtoken")] if clips else []
    out = ["", f"## LPIPS BD against x265 of {bench.parent.name}'s series, without and with the resampled points", "",
           "| series | points | " + " | ".join(clips) + " | mean |", "|---|---|" + "---|" * (len(clips) + 1)]
    for name in series:
        for added in (False, True):
            cells, rates, metrics = [], [], []
            for clip in clips:
                test = per_clip[clip][name] + (extra[clip] if added else [])
                test = pareto_front(test, "lpips") if added else test
                anchor = per_clip[clip]["hevc"]
                args = ([r["bpp"] for r in anchor], [r["metrics"]["lpips"] for r in anchor],
                        [r["bpp"] for r in test], [r["metrics"]["lpips"] for r in test])
                rate, metric = bd_rate(*args, higher_is_better=False).value, bd_metric(*args).value
                rates.append(rate)
                metrics.append(metric)
                cells.append("-" if rate is None else f"{rate:+.1f} % / {metric:+.3f}")
            ok = [(r, m) for r, m in zip(rates, metrics) if r is not None]
            mean = f"{np.mean([r for r, _ in ok]):+.1f} % / {np.mean([m for _, m in ok]):+.3f}" if ok else "-"
            out.append(f"| {name} | {'front with them' if added else 'as measured'} | " + " | ".join(cells)
                       + f" | {mean} |")
    return out


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--scales", default="0.5,1,2")
    ap.add_argument("--planes", default="4,8,16,32,64")
    ap.add_argument("--bench", type=Path, help="a vtoken bench results.json to read the BD figures against")
    args = ap.parse_args(argv)
    import numpy as np

    import vtoken
    from vtoken.metrics.lpips import lpips_frames
    from vtoken.metrics.psnr import psnr_rgb

    clips = clip_probe.named_clips(ap, args)
    lines = clip_probe.header("A finer or coarser latent grid in space, by resampling the input", "spatial_probe.py",
                              argv, args.device, "the default model and settings")
    lines += ["", "| clip | scale | coded size | planes | bpp of the source | LPIPS | PSNR RGB |",
              "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    points = {}  # (clip, scale) -> [(bpp, LPIPS)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in clips:
            ref = clip_probe.frames(clip)
            t, h, w, _ = ref.shape
            for scale in (float(s) for s in args.scales.split(",")):
                size = (int(round(h * scale / 2)) * 2, int(round(w * scale / 2)) * 2)
                src = clip if size == (h, w) else write_pngs(resample(ref, size), Path(tmp) / "frames")
                out = Path(tmp) / "x.mvt"
                for planes in (int(p) for p in args.planes.split(",")):
                    vtoken.encode(src, out, device=args.device, overwrite=True, planes=planes)
                    dec = np.concatenate(list(vtoken.decode_frames(out, device=args.device)))[:t]
                    if dec.shape[1:3] != (h, w):
                        dec = resample(dec, (h, w))
                    bpp = out.stat().st_size * 8 / (t * h * w)
                    lp = float(lpips_frames(ref, dec, args.device).mean())
                    ps = float(np.mean(psnr_rgb(ref, dec)))
                    lines.append(f"| {name} | {scale:g} | {size[1]}x{size[0]} | {planes} | {bpp:.4f} | {lp:.4f} | "
                                 f"{ps:.2f} |")
                    print(lines[-1], flush=True)
                    points.setdefault((name, scale), []).append((bpp, lp))
    if args.bench:
        table = bd_with(args.bench, points)
        lines += table
        print("\n".join(table), flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
