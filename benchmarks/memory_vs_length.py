"""Peak memory against video length: encode and decode generated clips of growing
length in fresh processes and report peak RSS (and peak GPU memory on CUDA). Flat numbers
mean memory is bounded by one chunk, not by the video.

    python benchmarks/memory_vs_length.py [--size 640x360] [--frames 34,136,544] [--device cpu] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
import torch
import vtoken
from vtoken.device import cuda_available
torch.set_num_threads(2)
job, src, dst, device = sys.argv[1:5]
t0 = time.perf_counter()
if job == "encode":
    res = vtoken.encode(src, dst, device=device, overwrite=True)
else:
    res = vtoken.decode(src, dst, device=device, overwrite=True)
out = {"seconds": time.perf_counter() - t0, "frames": res.frames, "fps": res.fps,
       "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if device != "cpu" and cuda_available():
    out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
if job == "encode":
    out["bytes"] = res.bytes
print(json.dumps(out))
"""


def write_clip(path: Path, frames: int, width: int, height: int) -> None:
    """A moving gradient + disc, written chunk by chunk (the generator's memory stays flat too)."""
    from vtoken.media import VideoWriter

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with VideoWriter(path, width, height, Fraction(30), overwrite=True, quality="medium") as w:
        for t in range(frames):
            img = np.stack([(x + 3 * t) % 256, (y + t) % 256, 128 + 100 * np.sin((x + y + 5 * t) / 40)], -1)
            cx = (t * 4) % width
            img[(x - cx) ** 2 + (y - height / 2) ** 2 < (height / 6) ** 2] = (250, 220, 30)
            w.write(img.astype(np.uint8))


def run_child(job: str, src: Path, dst: Path, device: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, job, str(src), str(dst), device],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{job} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--frames", default="34,136,544")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    import vtoken
    from vtoken.models import load_model

    model = load_model()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.frames.split(",")):
            src, mvt, out = Path(tmp) / f"in{n}.mp4", Path(tmp) / f"v{n}.mvt", Path(tmp) / f"out{n}.mp4"
            write_clip(src, n, width, height)
            enc = run_child("encode", src, mvt, args.device)
            dec = run_child("decode", mvt, out, args.device)
            rows.append({"frames": n, "encode": enc, "decode": dec})
            print(f"{n} frames: encode {enc['peak_rss_mib']:.0f} MiB {enc['fps']:.1f} fps; "
                  f"decode {dec['peak_rss_mib']:.0f} MiB {dec['fps']:.1f} fps", file=sys.stderr)
    lines = [
        f"memory_vs_length: {width}x{height}, device {args.device}, model {model.identity.name} "
        f"(sha256 {model.identity.sha256[:16]}), vtoken {vtoken.__version__}",
        f"machine: {platform.processor() or platform.machine()}, {platform.system()}, date {time.strftime('%Y-%m-%d')}",
        f"command: python benchmarks/memory_vs_length.py --size {args.size} --frames {args.frames} --device {args.device}",
        "",
        "| frames | encode peak RSS MiB | encode fps | decode peak RSS MiB | decode fps | bpp |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        bpp = r["encode"]["bytes"] * 8 / (r["frames"] * width * height)
        gpu = ""
        if "peak_gpu_mib" in r["encode"]:
            gpu = f" (GPU {r['encode']['peak_gpu_mib']:.0f} / {r['decode']['peak_gpu_mib']:.0f} MiB)"
        lines.append(f"| {r['frames']} | {r['encode']['peak_rss_mib']:.0f} | {r['encode']['fps']:.2f} | "
                     f"{r['decode']['peak_rss_mib']:.0f} | {r['decode']['fps']:.2f} | {bpp:.4f} |{gpu}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
