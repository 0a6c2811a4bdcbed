"""Which bits the encoder's hysteresis should hold: LPIPS BD-rate of hold rules against no hold.

    python benchmarks/hold_rules.py --videos data/eval/video/cockatoo.mp4 ... \
        --rules 0:0.3,0:0.5,0.5:1.0 --out benchmarks/results/hold_rules_eval_cpu.json

A rule W:T holds a predicted latent frame's bit when abs(z) + W * abs(previous z) < T
(vtoken/codec/hold.py; W 0 is lever 49's rule, abs(z) alone), T scaled as the encoder scales
it above its full-threshold plane count. Per clip (--frames frames from --start of it, at most
--max-side px, one key chunk) and per kept plane count in --planes: the bytes are the coder's
ideal code length of the held bits (shipped prior and predictor), the quality LPIPS of
`decode_bits` against the source frames, and `held` the share of the latent's bits the rule
changed. Each rule's curve is compared with the same clip's curve without the hold.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vtoken.codec.hold import BitHold
from vtoken.entropy.coder import coder_for
from vtoken.metrics.bdrate import bd_rate
from vtoken.metrics.evaluation import evaluate
from vtoken.metrics.lpips import LPIPS
from vtoken.models import load_model
from vtoken.train.data import load_video


def curve(model, coder, lpips, frames: np.ndarray, z: np.ndarray, weight: float, threshold: float,
          planes: list[int]) -> list[dict]:
    own = z >= 0
    points = []
    for k in planes:
        bits = BitHold(threshold, weight).bits(z, key=True, planes=k)
        coder.reset()
        nbytes = float(coder.estimate(bits[:k]).sum()) / 8
        with torch.no_grad():
            y = model.decode_bits(torch.from_numpy(bits)[None], planes=k)[0]
        dist = ((y + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
        m = evaluate(frames, dist, lpips_model=lpips)["mean"]
        points.append({"planes": k, "bpp": nbytes * 8 / frames[..., 0].size, "lpips": m["lpips"],
                       "held": float(np.mean(bits.astype(bool) != own))})
    return points


def bd_rate_prefix(base: list[dict], pts: list[dict]) -> tuple[float | None, int, str | None]:
    """(LPIPS BD-rate %, plane counts used, why undefined): over all points, or, where the
    no-hold curve stops improving at its top (a flat end is common: 48 -> 64 planes buys
    almost nothing on a still clip), over the longest prefix of plane counts where both improve."""
    for n in range(len(base), 3, -1):
        bd = bd_rate([p["bpp"] for p in base[:n]], [p["lpips"] for p in base[:n]],
                     [p["bpp"] for p in pts[:n]], [p["lpips"] for p in pts[:n]], higher_is_better=False)
        if bd.value is not None:
            return bd.value, n, None
    return None, 0, bd.reason


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", nargs="+", type=Path, required=True)
    ap.add_argument("--rules", default="0:0.3,0.5:1.0", help="W:T pairs, comma-separated")
    ap.add_argument("--planes", default="1,2,4,8,12,18,24,32,48,64", help="the eval bench's plane counts")
    ap.add_argument("--model", default=None, help="default: the shipped default model")
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--start", type=float, default=0.0, help="where each clip starts, as a fraction of it")
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rules = [tuple(float(v) for v in r.split(":")) for r in args.rules.split(",")]
    planes = [int(p) for p in args.planes.split(",")]
    model = load_model(args.model, device="cpu")
    coder, lpips = coder_for(model), LPIPS().eval()
    report = {"model": model.identity.short if model.identity else args.model, "frames": args.frames,
              "start": args.start, "max_side": args.max_side, "planes": planes, "clips": {}}
    for path in args.videos:
        frames = load_video(path, args.max_side, args.frames, args.start)
        frames = frames[:, : frames.shape[1] // 16 * 16, : frames.shape[2] // 16 * 16]
        v = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        with torch.no_grad():
            z = model.encode(v)[0].numpy()
        base = curve(model, coder, lpips, frames, z, 0.0, 0.0, planes)
        rows = {"none": {"points": base}}
        for weight, threshold in rules:
            t0 = time.time()
            pts = curve(model, coder, lpips, frames, z, weight, threshold, planes)
            value, used, why = bd_rate_prefix(base, pts)
            rows[f"{weight:g}:{threshold:g}"] = {"points": pts, "bd_rate_lpips_pct": value,
                                                  "bd_planes": planes[:used], "why_undefined": why}
            print(f"{path.name[:24]:24s} W {weight:g} T {threshold:g}: BD-rate "
                  f"{why if value is None else f'{value:+.2f} % over {planes[0]}-{planes[used - 1]} planes'} "
                  f"({time.time() - t0:.0f} s)", flush=True)
        report["clips"][str(path)] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
