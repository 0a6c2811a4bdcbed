"""Plane maps chosen from the start of a chunk: how much of `--plane-map`'s gain is left
when the encoder decodes only the first L latent frames at each candidate count (fewer
decodes: a faster choice), and applies the map it finds to the whole chunk?

Per clip (one key chunk) and per plane count k of the sweep: the uniform cut at k, and a map
chosen by vtoken.codec.plane_choice.PlaneMapper from latent frames 0..L-1 (and their frames)
at the bytes of k planes there, then given to every latent frame; the bits of each block are
its count's (with the hysteresis at that count, `--hold` 0.5), the bytes the coded segments
plus the map, the LPIPS the chunk decoded with the map. L equal to the chunk's latent frames
is the codec's own choice. The table gives the LPIPS BD-rate of each L against the uniform
cuts and the seconds the choice took.

    python benchmarks/plane_map_prefix_probe.py [NAME=]CLIP.y4m [...] [--prefixes 1,2,9]
        [--planes 2,3,4,6,8,12,16,24,32] [--out results.md]

`vtoken bench` leaves its references (33 frames at 640x360) in .cache/bench/refs.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import clip_probe
import refine_probe


def mapped_chunk(held, z: np.ndarray, counts: np.ndarray, block: int):
    """(bits uint8 [K, T', H', W'], limit uint8 [T', H', W']) of a chunk whose block counts
    are `counts` [GH, GW] in every latent frame: each block's bits those of its count."""
    from vtoken.codec.plane_choice import mixed_bits
    from vtoken.entropy.plane_map import expand

    limit = expand(np.broadcast_to(counts, (z.shape[1], *counts.shape)).copy(), block, z.shape[2:])
    return mixed_bits(limit, lambda c: held.bits(z, True, c, commit=False)), limit


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--prefixes", default="1,2,9", help="latent frames the choice decodes (9: a 33-frame chunk's all)")
    ap.add_argument("--planes", default="2,3,4,6,8,12,16,24,32")
    ap.add_argument("--passes", type=int, default=None, help="PlaneMapper's passes (default: the codec's; 1: each "
                    "block measured beside neighbours at its own count only)")
    ap.add_argument("--span", type=float, default=None, help="PlaneMapper's span (default: the codec's): a block's "
                    "count within this factor of the uniform cut's")
    args = ap.parse_args(argv)
    import torch

    from vtoken.codec.frames import to_frames, to_tensor
    from vtoken.codec.hold import BitHold
    from vtoken.codec.plane_choice import BLOCK, PlaneMapper
    from vtoken.entropy import coder_for
    from vtoken.entropy.plane_map import encode_map
    from vtoken.metrics.lpips import ReferenceLPIPS
    from vtoken.models import load_model

    torch.manual_seed(0)
    model = load_model(None, args.device).eval()
    prefixes = [int(p) for p in args.prefixes.split(",")]
    sweep = [int(k) for k in args.planes.split(",")]
    tf = model.config.temporal_factor
    lines = clip_probe.header("Plane maps chosen from the first latent frames of a chunk", "plane_map_prefix_probe.py",
                              argv, args.device, "the default model, one key chunk per clip, hold 0.5; bytes: the "
                              "coded segments (+ the map)")
    lines += ["", "| clip | planes | uniform bytes | uniform LPIPS | "
              + " | ".join(f"L={p} bytes | L={p} LPIPS | L={p} choice s" for p in prefixes) + " |",
              "|---|---|---|---|" + "---|---|---|" * len(prefixes)]
    summary = []
    for name, clip in clip_probe.named_clips(ap, args):
        ref = clip_probe.frames(clip)
        with torch.inference_mode():
            z = model.encode(to_tensor(ref, args.device))[0].float().cpu().numpy()
        score = ReferenceLPIPS(ref, args.device)

        def decoded_lpips(bits, limit=None, planes=None):
            with torch.inference_mode():
                video = model.decode_bits(torch.from_numpy(bits[None]), planes=planes,
                                          limit=None if limit is None else torch.from_numpy(limit[None]))
            return float(score(to_frames(video, *video.shape[2:])[:len(ref)]).mean())

        curves = {"uniform": []} | {p: [] for p in prefixes}
        for k in sweep:
            held = BitHold(0.5)
            uniform = held.bits(z, True, k, commit=False)
            curves["uniform"].append((k, sum(map(len, coder_for(model).encode(uniform[:k]))), decoded_lpips(uniform, planes=k)))
            row = [name, str(k), str(curves["uniform"][-1][1]), f"{curves['uniform'][-1][2]:.4f}"]
            for p in prefixes:
                start = time.perf_counter()
                n = min(len(ref), 1 + tf * (p - 1))
                options = {name: value for name, value in (("passes", args.passes), ("span", args.span))
                           if value is not None}
                mapper = PlaneMapper(model, args.device, **options)
                _, _, counts = mapper.choose(
                    ref[:n], np.ascontiguousarray(z[:, :p]), True, k, held, coder_for(model))
                took = time.perf_counter() - start
                bits, limit = mapped_chunk(held, z, counts[0], BLOCK)
                top = int(counts.max())
                size = sum(map(len, coder_for(model).encode(np.ascontiguousarray(bits[:top]), limit=limit)))
                size += len(encode_map(np.broadcast_to(counts[:1], (z.shape[1], *counts.shape[1:])).copy(), top))
                curves[p].append((k, size, decoded_lpips(bits, limit)))
                row += [str(size), f"{curves[p][-1][2]:.4f}", f"{took:.1f}"]
            lines.append("| " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
        cells = [refine_probe.bd_cells(curves["uniform"], curves[p]) for p in prefixes]
        summary.append(f"| {name} | " + " | ".join(show if metric is None else f"{show}, {metric:+.4f}"
                                                   for show, metric in cells) + " |")
    lines += ["", "LPIPS BD-rate (and BD-metric) of each choice against the uniform cuts:", "",
              "| clip | " + " | ".join(f"L={p}" for p in prefixes) + " |", "|---|" + "---|" * len(prefixes)] + summary
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
