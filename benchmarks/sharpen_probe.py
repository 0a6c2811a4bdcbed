"""Would a sharpening post-filter help LPIPS? Each clip is coded at each plane count with the
default settings, decoded, and the decoded frames are scored (LPIPS, PSNR RGB) as they are
and after an unsharp mask, out = x + a (x - gaussian_blur(x, sigma)), rounded and clipped to
8 bits, for each sigma and amount a. The filter changes no bit of the stream; a decoder
option would be all it takes, if it paid.

    python benchmarks/sharpen_probe.py [NAME=]CLIP.y4m [...] [--names a,b,...] [--planes 4,16,64]
        [--sigmas 1,2] [--amounts 0.3,0.6,1.0] [--device cpu] [--out results.md]

The clips are taken as they are (all their frames); `vtoken bench` leaves its references
(33 frames at 640x360) in .cache/bench/refs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import clip_probe


def unsharp(frames, sigma: float, amount: float):
    """uint8 [T, H, W, 3] frames after an unsharp mask (separable gaussian, edges replicated)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    r = int(np.ceil(2.5 * sigma))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    k = torch.tensor(k / k.sum(), dtype=torch.float32)
    x = torch.from_numpy(frames).float().permute(0, 3, 1, 2)
    y = F.pad(x, (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    y = F.conv2d(y, k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
    out = (x + amount * (x - y)).round().clamp(0, 255).to(torch.uint8)
    return out.permute(0, 2, 3, 1).numpy()


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--planes", default="4,16,64")
    ap.add_argument("--sigmas", default="1,2")
    ap.add_argument("--amounts", default="0.3,0.6,1.0")
    args = ap.parse_args(argv)
    import numpy as np

    from vtoken.metrics.lpips import lpips_frames
    from vtoken.metrics.psnr import psnr_rgb

    sigmas = [float(s) for s in args.sigmas.split(",")]
    amounts = [float(a) for a in args.amounts.split(",")]
    filters = [(s, a) for s in sigmas for a in amounts]
    clips = clip_probe.named_clips(ap, args)
    lines = clip_probe.header("A sharpening post-filter on vtoken's decoded frames", "sharpen_probe.py", argv,
                              args.device, "the default model and settings")
    lines += ["", "LPIPS / PSNR RGB (dB) as decoded, then after each unsharp mask (sigma, amount).", "",
              "| clip | planes | bpp | decoded | " + " | ".join(f"s {s:g}, a {a:g}" for s, a in filters) + " |",
              "|---|---|---|---|" + "---|" * len(filters)]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in clips:
            ref = clip_probe.frames(clip)
            for planes in (int(p) for p in args.planes.split(",")):
                res, dec, lpips = clip_probe.coded(clip, ref, Path(tmp) / "x.mvt", args.device, planes=planes)

                def score(frames, lpips=None):
                    if lpips is None:
                        lpips = float(lpips_frames(ref, frames, args.device).mean())
                    return f"{lpips:.4f} / {float(np.mean(psnr_rgb(ref, frames))):.2f}"

                cells = [score(dec, lpips)] + [score(unsharp(dec, s, a)) for s, a in filters]
                lines.append(f"| {name} | {planes} | {res.bpp:.4f} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    if args.out:  # the rows went to stdout as they came; the file gets the whole table
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
