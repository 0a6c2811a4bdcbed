"""Plane counts that vary across the picture: what would a per-region cut of the bit-planes
buy? A stream today keeps the same k planes at every latent position. Here each latent frame
is cut into blocks of BLOCK x BLOCK latent positions, and each block keeps its own count
from the candidates, chosen by a Lagrangian (LPIPS + lambda x bits) from two measurements
per block and count: its bits, the code lengths the shipped coder gives the bits a stream
keeping that count sends (with `--hold`, the encoder's hysteresis at that count, as the
codec applies it), and its LPIPS, the layers' distance maps of the clip decoded with that
count everywhere, pooled to the block grid.
Each choice is then decoded as one clip (dropped planes are zeros to the decoder, as for a
uniform cut) and scored on every frame, so the LPIPS is measured, not predicted; the rate is
the coder's estimate plus an order-0 code of the count map, for the uniform cuts the same
estimate. The LPIPS BD-rate of the mixed curve against the uniform one is the gain a format
with per-region plane counts could reach with this choice rule (an encoder that decodes each
count once: an effort setting; neighbours and later frames are ignored when choosing).
`--rule cap` chooses with no decode at all: each block keeps the most planes whose bits fit
a cap, swept like lambda, the rule a fast encoder could afford.

    python benchmarks/plane_map_probe.py [NAME=]CLIP.y4m [...] [--names a,b,...]
        [--planes 1,2,3,4,6,8,12,16,24,32,48,64] [--block 5] [--lambdas 13] [--rule lpips|cap] [--hold 0.5]
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
import refine_probe


def block_lpips(lpips, ref_feats, video, grid: tuple[int, int]) -> np.ndarray:
    """float64 [T, BY, BX]: each frame's LPIPS distance map pooled to the block grid, so that
    the mean over blocks is the frame's LPIPS (every layer's map is a mean over its own
    positions, so each is pooled on its own before the layers are summed); exactly on a grid
    of one block, within a few percent where a map's size is not a multiple of the grid and
    neighbouring blocks share a row or column."""
    import torch

    from vtoken.metrics.lpips import fold_frames

    out = []
    with torch.inference_mode():
        for i, f0 in enumerate(ref_feats):
            f1 = lpips.features(fold_frames(video[:, :, i * 8:(i + 1) * 8]).clamp(-1, 1))
            out.append(lpips.block_distance(f0, f1, grid).double().cpu().numpy())
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


def x265_curve(csv_path: Path, clip: str) -> list[tuple]:
    """[(crf, bytes, LPIPS)] of the hevc rows of `clip` in a bench's results.csv, by bytes."""
    import csv

    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["codec"] == "hevc" and r["clip"] == clip]
    if not rows:
        raise SystemExit(f"plane_map_probe: no hevc rows for {clip} in {csv_path}")
    return sorted(((r["quality"], float(r["bytes"]), float(r["lpips"])) for r in rows), key=lambda p: p[1])


def bd_cell(anchor: list[tuple], test: list[tuple]) -> str:
    """'BD-rate, BD-metric' of LPIPS curve `test` against `anchor` (each [(_, bytes, LPIPS)])."""
    show, metric = refine_probe.bd_cells(anchor, test)
    return f"{show}, {metric:+.4f}" if metric is not None else show


def block_code_lengths(coder, bits: np.ndarray, planes: int, block: tuple[int, int]) -> np.ndarray:
    """float64 [T', BY, BX]: the code length in bits of each block's first `planes` planes of
    `bits` [K, T', H', W'] under the coder's probabilities (its state as given)."""
    from vtoken.codec.plane_choice import position_code_lengths

    cost = position_code_lengths(coder, bits, planes)  # [T', H', W']
    t, h, w = cost.shape
    return cost.reshape(t, h // block[0], block[0], w // block[1], block[1]).sum(axis=(2, 4))


def mixed_latent(bits: dict[int, np.ndarray], cands: list[int], choice: np.ndarray,
                 block: tuple[int, int]) -> np.ndarray:
    """float32 [K, T', H', W'] the decoder reads for a per-block cut: in each block the +-1
    bits its count's stream sends (bits[count]), zeros past that count, as a uniform cut
    feeds the decoder."""
    counts = np.array(cands)[choice]
    per_pos = np.repeat(np.repeat(counts, block[0], axis=1), block[1], axis=2)  # [T', H', W']
    which = np.repeat(np.repeat(choice, block[0], axis=1), block[1], axis=2)
    k_all = bits[cands[0]].shape[0]
    out = np.zeros(bits[cands[0]].shape, dtype=np.float32)
    for c, k in enumerate(cands):
        sign = bits[k].astype(np.float32) * 2 - 1
        out += np.where(which[None] == c, sign, 0)
    return out * (np.arange(k_all).reshape(-1, 1, 1, 1) < per_pos[None])


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--planes", default="1,2,3,4,6,8,12,16,24,32,48,64")
    ap.add_argument("--block", type=int, default=5,
                    help="block side in latent positions; 0: the whole latent frame (a count per latent frame)")
    ap.add_argument("--lambdas", type=int, default=13, help="lambda values, geometric over the uniform curve's slopes "
                    "(with --rule cap: caps, geometric over the blocks' bits)")
    ap.add_argument("--hold", type=float, default=0.0,
                    help="the encoder's hysteresis (vtoken encode --hold; the codec's default 0.5), per count")
    ap.add_argument("--rule", choices=("lpips", "cap"), default="lpips",
                    help="lpips: the Lagrangian over the measured block LPIPS; cap: each block the most planes whose "
                    "bits fit a cap (no decode needed to choose)")
    ap.add_argument("--x265", type=Path, help="a bench's results.csv: its hevc rows of each clip as a further anchor")
    args = ap.parse_args(argv)
    import torch

    from vtoken.codec.frames import to_frames, to_tensor
    from vtoken.codec.hold import BitHold
    from vtoken.entropy import coder_for
    from vtoken.metrics.lpips import fold_frames, get_lpips, lpips_frames
    from vtoken.models import load_model

    torch.manual_seed(0)
    model = load_model(None, args.device).eval()
    lpips = get_lpips(args.device)
    cands = [int(p) for p in args.planes.split(",")]
    rule = "a Lagrangian choice" if args.rule == "lpips" else "a cap on each block's bits"
    lines = clip_probe.header(f"Per-region plane counts: {rule} per block, decoded and measured",
                              "plane_map_probe.py", argv, args.device,
                              f"the default model, one chunk per clip, hold {args.hold}; blocks of "
                              + (f"{args.block} x {args.block} latent positions" if args.block else "a whole latent frame")
                              + " per latent frame; rate: the coder's estimate (+ the count map, order-0)")
    lines += ["", "| clip | series | mean planes | est. bytes | map bytes | LPIPS |", "|---|---|---|---|---|---|"]
    summary = []
    for name, clip in clip_probe.named_clips(ap, args):
        start = time.perf_counter()
        ref = clip_probe.frames(clip)
        video = to_tensor(ref, args.device)
        with torch.inference_mode():
            z = model.encode(video)[0].float().cpu().numpy()
        _, tl, hl, wl = z.shape
        by, bx = (args.block, args.block) if args.block else (hl, wl)
        if hl % by or wl % bx:
            ap.error(f"{name}: the latent grid {hl} x {wl} is not a multiple of --block {args.block}")
        grid = (hl // by, wl // bx)
        coder = coder_for(model)
        # The bits a stream keeping k planes sends: the encoder's hysteresis depends on k.
        bits = {k: BitHold(args.hold).bits(z, key=True, planes=k) for k in cands}
        coder.reset()
        coded_bytes = sum(len(s) for s in coder.encode(bits[cands[-1]]))
        owner = latent_of_frames(len(ref), model.temporal_factor)
        with torch.inference_mode():
            ref_feats = [lpips.features(fold_frames(video[:, :, i:i + 8])) for i in range(0, len(ref), 8)]
        rate = np.zeros((len(cands), tl, *grid))
        dist = np.zeros((len(cands), tl, *grid))
        uniform = []
        for c, k in enumerate(cands):
            coder.reset()
            rate[c] = block_code_lengths(coder, bits[k], k, (by, bx))
            with torch.inference_mode():
                dec = model.decode_bits(torch.from_numpy(bits[k][None]).to(args.device), planes=k)
            per_frame = block_lpips(lpips, ref_feats, dec, grid)  # [T, BY, BX]
            for t in range(tl):
                dist[c, t] = per_frame[owner == t].sum(axis=0)
            scored = float(lpips_frames(ref, to_frames(dec, *dec.shape[2:]), args.device).mean())
            uniform.append((k, rate[c].sum() / 8, scored))
            lines.append(f"| {name} | uniform {k} | {k} | {rate[c].sum() / 8:.0f} | 0 | {scored:.4f} |")
            print(lines[-1], flush=True)
        dist /= len(ref) * grid[0] * grid[1]  # a block's share of the clip's mean LPIPS
        # Lambdas spanning the uniform curve's slopes (LPIPS per bit between neighbours).
        slopes = [(q0 - q1) / max(8 * (s1 - s0), 1.0) for (_, s0, q0), (_, s1, q1) in zip(uniform, uniform[1:])]
        slopes = [s for s in slopes if s > 0]
        if args.rule == "lpips":
            sweep = [(f"lambda {lam:.3g}", np.argmin(dist + lam * rate, axis=0))  # [T', BY, BX] candidate index
                     for lam in np.geomspace(min(slopes) / 2, max(slopes) * 2, args.lambdas)]
        else:  # the most planes whose bits fit the cap (the code lengths grow with the count)
            sweep = [(f"cap {cap:.0f} bits", np.maximum((rate <= cap).sum(axis=0) - 1, 0))
                     for cap in np.geomspace(np.median(rate[0]), rate[-1].max(), args.lambdas)]
        mixed = []
        for label, choice in sweep:
            counts = np.array(cands)[choice]
            q = mixed_latent(bits, cands, choice, (by, bx))
            with torch.inference_mode():
                dec = model.decode(torch.from_numpy(q[None]).to(args.device))
            scored = float(lpips_frames(ref, to_frames(dec, *dec.shape[2:]), args.device).mean())
            est = float(np.take_along_axis(rate, choice[None], 0).sum()) / 8
            extra = map_bits(choice) / 8
            mixed.append((float(counts.mean()), est + extra, scored))
            lines.append(f"| {name} | mixed, {label} | {counts.mean():.1f} | {est:.0f} | {extra:.0f} | "
                         f"{scored:.4f} |")
            print(lines[-1], flush=True)
        # Each curve's front (no cheaper point as good), as the bench's best-of series: a
        # uniform cut can be worse than a cheaper one, which a BD fit refuses.
        uni, mix = front(uniform), front(mixed)
        against_x265 = ""
        if args.x265:
            x265 = x265_curve(args.x265, name)
            against_x265 = " | " + " | ".join(bd_cell(x265, c) for c in (uni, mix))
        summary.append(f"| {name} | {bd_cell(uni, mix)} | {coded_bytes} / {uniform[-1][1]:.0f} | "
                       f"{time.perf_counter() - start:.0f} s{against_x265} |")
    x265_head = (" | uniform vs x265 | mixed vs x265", "|---|---") if args.x265 else ("", "")
    lines += ["", "## Mixed against uniform (LPIPS BD-rate, BD-metric; negative is better)", "",
              f"| clip | mixed vs uniform (fronts) | coded / estimated bytes, all planes | time{x265_head[0]} |",
              f"|---|---|---|---{x265_head[1]}|"]
    lines += summary
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
