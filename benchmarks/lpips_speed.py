"""LPIPS throughput on the CPU for 640x360 frames (product venv):

    .venv/bin/python benchmarks/lpips_speed.py [--threads 1 2] [--batch 1 4 8] [--frames 16]
"""

import argparse
import os
import platform
import time

import numpy as np
import torch

from vtoken.metrics.lpips import LPIPS, lpips_frames


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--frames", type=int, default=16)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (args.frames, 360, 640, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(int) + rng.integers(-8, 9, ref.shape), 0, 255).astype(np.uint8)
    model = LPIPS()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus visible; {args.frames} frame pairs of 640x360 per run")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batch:
            lpips_frames(ref[:batch], dist[:batch], batch=batch, model=model)  # warm-up
            t0 = time.perf_counter()
            lpips_frames(ref, dist, batch=batch, model=model)
            dt = time.perf_counter() - t0
            print(f"threads {threads} batch {batch}: {args.frames / dt:6.1f} frame pairs/s")


if __name__ == "__main__":
    main()
