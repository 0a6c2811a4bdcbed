"""`make demo`: encode and decode a clip the project makes itself, then describe the file.

    python -m vtoken.demo OUTDIR
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np


def synthetic_clip(frames: int = 33, height: int = 144, width: int = 256) -> np.ndarray:
    """A smooth gradient background with a moving disc and a sliding bar: real structure, not noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        r = 128 + 100 * np.sin(x / width * 3.0 + t * 0.05)
        g = 128 + 100 * np.cos(y / height * 2.0 - t * 0.04)
        b = 128 + 60 * np.sin((x + y) / (width + height) * 4.0)
        cx, cy = width * (0.2 + 0.6 * t / max(1, frames - 1)), height * 0.5
        disc = (x - cx) ** 2 + (y - cy) ** 2 < (height * 0.18) ** 2
        bar = np.abs(y - (height * 0.15 + t * 2) % height) < 4
        img = np.stack([r, g, b], -1)
        img[disc] = (240, 200, 40)
        img[bar] = (20, 30, 200)
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def main(argv: list[str]) -> int:
    import vtoken
    from vtoken.media import VideoWriter

    out = Path(argv[0] if argv else "out")
    out.mkdir(parents=True, exist_ok=True)
    src, mvt, dst = out / "demo_input.y4m", out / "demo.mvt", out / "demo_decoded.mp4"
    clip = synthetic_clip()
    with VideoWriter(src, clip.shape[2], clip.shape[1], Fraction(25), overwrite=True) as w:
        w.write(clip)
    enc = vtoken.encode(src, mvt, quality=8, overwrite=True)
    dec = vtoken.decode(mvt, dst, overwrite=True)
    print(f"encoded {src} -> {mvt}: {enc.bytes} bytes, {enc.bpp:.4f} bpp, {enc.fps:.1f} fps on {enc.device}")
    print(f"decoded {mvt} -> {dst}: {dec.frames} frames, {dec.fps:.1f} fps")
    print(json.dumps(vtoken.info(mvt), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
