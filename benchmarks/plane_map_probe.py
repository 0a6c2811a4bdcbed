"""Plane counts that vary across the picture: what would a per-region cut of the bit-planes
buy? A stream today keeps the same k planes at every latent position. Here each latent frame
is cut into blocks of BLOCK x BLOCK latent positions, and each block keeps its own count
from the candidates, chosen by a Lagrangian (LPIPS + lambda x bits) from two measurements
per block and count: its bits, the code lengths the shipped coder gives them (its
probabilities for the clip's bits with every plane kept), and its LPIPS, the layers'
distance maps of the clip decoded with that count everywhere, pooled to the block grid.
Each choice is then decoded as one clip (dropped planes are zeros to the decoder, as for a
uniform cut) and scored on every frame, so the LPIPS is measured, not predicted; the rate is
the coder's estimate plus an order-0 code of the count map, for the uniform cuts the same
estimate. The LPIPS BD-rate of the mixed curve against the uniform one is the gain a format
with per-region plane counts could reach with this choice rule (an encoder that decodes each
count once: an effort setting; neighbours and later frames are ignored when choosing).

    python benchmarks/plane_map_probe.py [NAME=]CLIP.y4m [...] [--names a,b,...]
        [--planes 1,2,3,4,6,8,12,16,24,32,48,64] [--block 5] [--lambdas 13]
        [--x265 BENCH/results.csv] [--out results.md]

With --x265 (a bench's results.csv over the same clips and frames) each front is also set
against x265's curve from that file, as the bench's headline BD-rate is.

`vtoken bench` leaves its references (33 frames at 640x360) in .cache/bench/refs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import clip_probe


def block_lpips(lpips, ref_feats, video, grid: tuple[int, int]) -> np.ndarray:
    """float64 [T, BY, BX]: each frame's LPIPS distance map pooled to the block grid, so that
    the mean over blocks is the frame's LPIPS (every layer's map is a mean over its own
    positions, so each is pooled on its own before the layers are summed); exactly on a grid
    of one block, within a few percent where a map's size is not a multiple of the grid and
    neighbouring blocks share a row or column."""
    import torch
    import torch.nn.functional as F

    from vtoken.metrics.lpips import fold_frames

    out = []
    with torch.inference_mode():
        for i, f0 in enumerate(ref_feats):
            x = fold_frames(video[:, :, i * 8:(i + 1) * 8])
            f1 = lpips.features(x.clamp(-1, 1))
            total = 0
            for j, (a, b) in enumerate(zip(f0, f1)):
                total = total + F.adaptive_avg_pool2d(getattr(lpips, f"lin{j}")((a - b) ** 2), grid)
            out.append(total[:, 0].double().numpy())
    return np.concatenate(out)


def latent_of_frames(frames: int, factor: int) -> np.ndarray:
    """The latent frame each frame belongs to (frame 0 alone, then groups of `factor`)."""
    return np.array([0] + [1 + (i - 1) // factor for i in range(1, frames)])


def map_bits(choice: np.ndarray) -> float:
    """Order-0 code length in bits of the count map (the candidates' indices)."""
    _, n = np.unique(choice, return_counts=True)
    p = n / n.sum()
    return float(-(n * np.log2(p)).sum())


def front(points: list[tuple]) -> list[tuple]:
    """The (planes, bytes, LPIPS) points no cheaper point matches or beats, by bytes."""
    from vtoken.bench.curves import pareto_front

    recs = [{"bpp": s, "metrics": {"lpips": q}, "point": (k, s, q)} for k, s, q in points]
    return [r["point"] for r in pareto_front(recs, "lpips")]


def x265_curve(csv_path: Path, clip: str) -> tuple[list[float], list[float]]:
    """(bytes, LPIPS) of the hevc rows of `clip` in a bench's results.csv."""
    import csv

    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["codec"] == "hevc" and r["clip"] == clip]
    if not rows:
        raise SystemExit(f"plane_map_probe: no hevc rows for {clip} in {csv_path}")
    rows.sort(key=lambda r: float(r["bytes"]))
    return [float(r["bytes"]) for r in rows], [float(r["lpips"]) for r in rows]


def bd_cells(anchor, test) -> str:
    """'BD-rate, BD-metric' of LPIPS curve `test` against `anchor` (each (bytes, LPIPS))."""
    from vtoken.metrics.bdrate import bd_metric, bd_rate

    rate = bd_rate(*anchor, *test, higher_is_better=False)
    show = f"{rate.value:+.1f} %" if rate.value is not None else f"undefined ({rate.reason})"
    metric = bd_metric(*anchor, *test).value
    return f"{show}, {metric:+.4f}" if metric is not None else show


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--planes", default="1,2,3,4,6,8,12,16,24,32,48,64")
    ap.add_argument("--block", type=int, default=5,
                    help="block side in latent positions; 0: the whole latent frame (a count per latent frame)")
    ap.add_argument("--lambdas", type=int, default=13, help="lambda values, geometric over the uniform curve's slopes")
    ap.add_argument("--x265", type=Path, help="a bench's results.csv: its hevc rows of each clip as a further anchor")
    args = ap.parse_args(argv)
    import torch

    from vtoken.codec.frames import to_frames, to_tensor
    from vtoken.entropy import coder_for
    from vtoken.metrics.lpips import fold_frames, get_lpips, lpips_frames
    from vtoken.models import load_model

    torch.manual_seed(0)
    model = load_model(None, args.device).eval()
    lpips = get_lpips(args.device)
    cands = [int(p) for p in args.planes.split(",")]
    lines = clip_probe.header("Per-region plane counts: a Lagrangian choice per block, decoded and measured",
                              "plane_map_probe.py", argv, args.device,
                              f"the default model, one chunk per clip, no hold; blocks of "
                              + (f"{args.block} x {args.block} latent positions" if args.block else "a whole latent frame")
                              + " per latent frame; rate: the coder's estimate (+ the count map, order-0)")
    lines += ["", "| clip | series | mean planes | est. bytes | map bytes | LPIPS |", "|---|---|---|---|---|---|"]
    summary = []
    for name, clip in clip_probe.named_clips(ap, args):
        start = time.perf_counter()
        ref = clip_probe.frames(clip)
        video = to_tensor(ref, args.device)
        with torch.inference_mode():
            bits = model.encode_bits(video)
        k_all, tl, hl, wl = bits.shape[1:]
        by, bx = (args.block, args.block) if args.block else (hl, wl)
        if hl % by or wl % bx:
            ap.error(f"{name}: the latent grid {hl} x {wl} is not a multiple of --block {args.block}")
        grid = (hl // by, wl // bx)
        # Code lengths: the coder's probability for each bit, every plane kept.
        coder = coder_for(model)
        coder.reset()
        np_bits = np.ascontiguousarray(bits[0].cpu().numpy())
        p1 = np.clip(coder.probabilities(np_bits), 1e-9, 1 - 1e-9)
        cost = -np.log2(np.where(np_bits == 1, p1, 1 - p1))  # [K, T', H', W']
        coder.reset()
        coded_bytes = sum(len(s) for s in coder.encode(np_bits))
        cum = np.cumsum(cost, axis=0)  # bits of planes < k+1
        block_bits = cum.reshape(k_all, tl, grid[0], by, grid[1], bx).sum(axis=(3, 5))  # [K, T', BY, BX]
        owner = latent_of_frames(len(ref), model.temporal_factor)
        with torch.inference_mode():
            ref_feats = [lpips.features(fold_frames(video[:, :, i:i + 8])) for i in range(0, len(ref), 8)]
        rate = np.zeros((len(cands), tl, *grid))
        dist = np.zeros((len(cands), tl, *grid))
        uniform = []
        for c, k in enumerate(cands):
            with torch.inference_mode():
                dec = model.decode_bits(bits, planes=k)
            per_frame = block_lpips(lpips, ref_feats, dec, grid)  # [T, BY, BX]
            for t in range(tl):
                dist[c, t] = per_frame[owner == t].sum(axis=0)
            rate[c] = block_bits[k - 1]
            scored = float(lpips_frames(ref, to_frames(dec, *dec.shape[2:]), args.device).mean())
            uniform.append((k, rate[c].sum() / 8, scored))
            lines.append(f"| {name} | uniform {k} | {k} | {rate[c].sum() / 8:.0f} | 0 | {scored:.4f} |")
            print(lines[-1], flush=True)
        dist /= len(ref) * grid[0] * grid[1]  # a block's share of the clip's mean LPIPS
        # Lambdas spanning the uniform curve's slopes (LPIPS per bit between neighbours).
        slopes = [(q0 - q1) / max(8 * (s1 - s0), 1.0) for (_, s0, q0), (_, s1, q1) in zip(uniform, uniform[1:])]
        slopes = [s for s in slopes if s > 0]
        lambdas = np.geomspace(min(slopes) / 2, max(slopes) * 2, args.lambdas)
        mixed = []
        for lam in lambdas:
            choice = np.argmin(dist + lam * rate, axis=0)  # [T', BY, BX] candidate index
            counts = np.array(cands)[choice]
            per_pos = np.repeat(np.repeat(counts, by, axis=1), bx, axis=2)  # [T', H', W']
            mask = torch.arange(k_all).view(-1, 1, 1, 1) < torch.from_numpy(per_pos)[None]
            q = (bits.float() * 2 - 1) * mask[None].to(args.device)
            with torch.inference_mode():
                dec = model.decode(q)
            scored = float(lpips_frames(ref, to_frames(dec, *dec.shape[2:]), args.device).mean())
            est = float(np.take_along_axis(rate, choice[None], 0).sum()) / 8
            extra = map_bits(choice) / 8
            mixed.append((float(counts.mean()), est + extra, scored))
            lines.append(f"| {name} | mixed, lambda {lam:.3g} | {counts.mean():.1f} | {est:.0f} | {extra:.0f} | "
                         f"{scored:.4f} |")
            print(lines[-1], flush=True)
        # Each curve's front (no cheaper point as good), as the bench's best-of series: a
        # uniform cut can be worse than a cheaper one, which a BD fit refuses.
        uni, mix = front(uniform), front(mixed)
        curves = (([s for _, s, _ in uni], [q for _, _, q in uni]), ([s for _, s, _ in mix], [q for _, _, q in mix]))
        against_x265 = ""
        if args.x265:
            x265 = x265_curve(args.x265, name)
            cells = [bd_cells(x265, ([s for _, s, _ in c], [q for _, _, q in c])) for c in (uni, mix)]
            against_x265 = " | " + " | ".join(cells)
        summary.append(f"| {name} | {bd_cells(*curves)} | {coded_bytes} / {uniform[-1][1]:.0f} | "
                       f"{time.perf_counter() - start:.0f} s{against_x265} |")
    x265_head = (" | uniform vs x265 | mixed vs x265", "|---|---") if args.x265 else ("", "")
    lines += ["", "## Mixed against uniform (LPIPS BD-rate, BD-metric; negative is better)", "",
              f"| clip | mixed vs uniform (fronts) | coded / estimated bytes, all planes | time{x265_head[0]} |",
              f"|---|---|---|---{x265_head[1]}|"]
    lines += summary
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
