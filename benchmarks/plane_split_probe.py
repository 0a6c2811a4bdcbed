"""Would a chunk pay for giving its key latent frame other planes than its predicted ones?
Today every latent frame of a chunk is cut at the same plane. The key latent frame (the
chunk's first frame alone) costs 12-17 % of a 33-frame chunk's bits for 1 of its 33 frames,
but the decoder's causal temporal layers read it for every frame after. Each clip is coded as
one chunk with the default model (no hold); the key latent frame keeps k0 planes and the
predicted ones kp, for every pair of the plane counts given; the decoded clip is scored with
LPIPS against the source, and the rate is the coder's ideal code length of the kept bits (the
batches the coder walks, recorded as coder_replay.py records them, assigned to their latent
frame). Where kp > k0 the predicted frame after the key one would in truth lose its temporal
context in the planes the key frame lacks: the rate there is a little optimistic.

    python benchmarks/plane_split_probe.py [NAME=]CLIP.y4m [...] [--names a,b,...]
        [--planes 2,4,8,16,32,64] [--device cpu] [--out results.md]

Reported per clip: the points, and the best unequal splits' LPIPS against the equal cut's
(k0 = kp, today's cut) at the same rate: what a per-chunk choice of the split could at best
gain. `vtoken bench` leaves its references (33 frames at 640x360) in
.cache/bench/refs.
"""

from __future__ import annotations

import sys

import numpy as np

import clip_probe
from coder_replay import ideal_bits, recording


def costs_by_frame(log: list, planes: int, frames: int, positions: int) -> np.ndarray:
    """Ideal bits [planes, frames] of the recorded walk: inside a plane the coder walks latent
    frame by latent frame, `positions` bits each, so a batch's frame is its offset's."""
    cost = np.zeros((planes, frames))
    offset = np.zeros(planes, dtype=np.int64)
    for event in log:
        if event[0] != "batch":
            continue
        _, k, _, n, bits = event
        t = int(offset[k] // positions)
        if (offset[k] + bits.size - 1) // positions != t:
            raise AssertionError("a batch straddles two latent frames")
        cost[k, t] += float(ideal_bits(n, bits).sum())
        offset[k] += bits.size
    if not np.all(offset == frames * positions):
        raise AssertionError("the recorded walk does not cover every bit")
    return cost


def split_gains(points: list[dict]) -> list[tuple[float, int, int]]:
    """(LPIPS minus the equal cut's at the same rate, k0, kp) of every unequal split inside the
    equal cut's rate range, best first; the equal cut (k0 = kp) is read between its points by
    monotone cubic interpolation in log rate, as the BD figures read curves. (A BD-rate of the
    Pareto front of all splits against the equal cut is no measure here: the front takes
    points that are worse than the equal curve between its sparse plane counts.)"""
    from scipy.interpolate import PchipInterpolator

    equal = sorted((p["bpp"], p["metrics"]["lpips"]) for p in points if p["k0"] == p["kp"])
    curve = PchipInterpolator(np.log10([b for b, _ in equal]), [q for _, q in equal])
    return sorted((p["metrics"]["lpips"] - float(curve(np.log10(p["bpp"]))), p["k0"], p["kp"]) for p in points
                  if p["k0"] != p["kp"] and equal[0][0] <= p["bpp"] <= equal[-1][0])


def decode_split(model, bits, k0: int, kp: int):
    """uint8 frames [T, H, W, 3] decoded with the key latent frame cut at k0 planes and the
    others at kp (the planes left out fed as 0, as Tokenizer.decode_bits feeds them)."""
    import torch

    from vtoken.codec.frames import to_frames

    q = torch.zeros(bits.shape, dtype=torch.float32)
    signs = bits.float() * 2 - 1
    q[:, :k0, :1] = signs[:, :k0, :1]
    q[:, :kp, 1:] = signs[:, :kp, 1:]
    with torch.inference_mode():
        video = model.decoder(q)
    return to_frames(video, video.shape[2], video.shape[3], video.shape[4])


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--planes", default="2,4,8,16,32,64")
    args = ap.parse_args(argv)
    import torch

    from vtoken.codec.frames import to_tensor
    from vtoken.entropy import coder_for
    from vtoken.metrics.lpips import lpips_frames
    from vtoken.models import load_model

    torch.set_grad_enabled(False)
    model = load_model(None, args.device)
    plane_counts = [int(p) for p in args.planes.split(",")]
    lines = clip_probe.header("Key and predicted latent frames cut at different planes", "plane_split_probe.py", argv,
                              args.device, "the default model, one chunk per clip, no hold, ideal code lengths")
    lines += ["", "| clip | k0 (key) | kp (predicted) | bpp | LPIPS |", "|---|---|---|---|---|"]
    summary = []
    for name, clip in clip_probe.named_clips(ap, args):
        ref = clip_probe.frames(clip)
        video = to_tensor(ref, "cpu")
        bits = model.encode_bits(video)
        _, k, t, h, w = bits.shape
        with recording([]) as log:
            coder = coder_for(model)
            coder.reset()
            coder.encode(np.ascontiguousarray(bits[0].numpy()))
        cost = costs_by_frame(log, k, t, h * w)
        pixels = ref.shape[0] * ref.shape[1] * ref.shape[2]
        points = []
        for k0 in plane_counts:
            for kp in plane_counts:
                bpp = (cost[:k0, 0].sum() + cost[:kp, 1:].sum()) / pixels
                score = float(lpips_frames(ref, decode_split(model, bits, k0, kp), args.device).mean())
                points.append({"k0": k0, "kp": kp, "bpp": bpp, "metrics": {"lpips": score}})
                lines.append(f"| {name} | {k0} | {kp} | {bpp:.5f} | {score:.4f} |")
                print(lines[-1], flush=True)
        gains = split_gains(points)
        summary.append(f"| {name} | " + ", ".join(f"{k0}/{kp}: {g:+.4f}" for g, k0, kp in gains[:4]) + " |")
    lines += ["", "## The best splits: LPIPS minus the equal cut's at the same rate (negative is better)", "",
              "| clip | k0/kp: LPIPS difference, best first |", "|---|---|"] + summary
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
