"""How steady a model's bits are from one latent frame to the next, and what that costs.

    python benchmarks/temporal_bits.py --model vtoken-patch-cpu-77df9628 --videos data/train/video \
        --clips 8 --out benchmarks/results/temporal_bits_cpu.json

Per clip (the first --frames frames from --start of each of --clips videos spread over the
sorted list, at most --max-side px, cropped to a multiple of 16):

* `flips`: the share of bits that differ from the co-located bit of the previous latent frame;
* `coder_pred_over_key`: the coder's ideal code length (shipped prior and predictor) of a
  predicted latent frame, mean over them, over the key frame's;
* `estimate_over_coder`: the training rate model (vtoken/train/rate.py, fitted to this
  clip's bits) on the predicted frames over the coder's, with the co-located temporal
  context and with `motion` (the coder's block motion);
* `flipped_abs_z_below`: the share of flipped bits whose pre-quantization abs(z) is below
  0.25 / 0.5 / 1.0 (near the sign boundary: noise rather than change), and the median abs(z)
  of all bits.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vtoken.defaults import VIDEO_EXTENSIONS
from vtoken.entropy.coder import coder_for
from vtoken.models import load_model
from vtoken.train.data import load_video
from vtoken.train.rate import BitRateModel


def fitted_frame_bits(q: torch.Tensor, motion: bool, steps: int = 300) -> np.ndarray:
    """Estimated bits per latent frame of q [1, K, T', H', W'] (+-1) under a rate model fitted to it."""
    m = BitRateModel(q.shape[1], crossplane=True, motion=motion)
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        m(q).backward()
        opt.step()
    with torch.no_grad():
        return m.frame_bits(q).numpy()


def measure(model, frames: np.ndarray) -> dict:
    v = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        z = model.encode(v)[0].numpy()  # K, T', H', W'
    bits = (z >= 0).astype(np.uint8)
    coder = coder_for(model)
    cumulative = [coder.estimate(bits[:, : t + 1]).sum() for t in range(bits.shape[1])]
    coder_frames = np.diff([0.0] + cumulative)
    q = torch.from_numpy(bits).float()[None] * 2 - 1
    flipped = bits[:, 1:] != bits[:, :-1]
    abs_z = np.abs(z[:, 1:])[flipped]
    out = {
        "latent_shape": list(bits.shape),
        "flips": round(float(flipped.mean()), 4),
        "coder_pred_over_key": round(float(coder_frames[1:].mean() / coder_frames[0]), 3),
        "estimate_over_coder": {},
        "flipped_abs_z_below": ({str(s): round(float((abs_z < s).mean()), 3) for s in (0.25, 0.5, 1.0)}
                                if abs_z.size else None),  # None: no bit flipped
        "median_abs_z": round(float(np.median(np.abs(z))), 3),
    }
    for motion in (False, True):
        est = fitted_frame_bits(q, motion)
        out["estimate_over_coder"]["motion" if motion else "co-located"] = round(
            float(est[1:].sum() / coder_frames[1:].sum()), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="zoo name or .json (default: the default model)")
    ap.add_argument("--videos", required=True)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--start", type=float, default=0.3, help="where in each video the clip starts (fraction)")
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(a.model, device="cpu")
    videos = sorted(p for p in Path(a.videos).rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
    picked = videos[:: max(1, len(videos) // a.clips)][: a.clips]
    rows = {}
    for path in picked:
        frames = load_video(path, a.max_side, a.frames, a.start)
        if frames.shape[0] < a.frames:
            continue
        _, h, w, _ = frames.shape
        key = path.relative_to(a.videos).as_posix()
        rows[key] = measure(model, frames[:, : h // 16 * 16, : w // 16 * 16])
        print(key, json.dumps(rows[key]), flush=True)
    result = {"model": model.identity.name, "frames": a.frames, "start": a.start, "max_side": a.max_side,
              "clips": rows}
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
