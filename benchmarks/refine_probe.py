"""How much LPIPS does the encoder leave on the table? Test-time refinement of the bits with
the decoder fixed: the encoder's pre-quantization latent z of a clip is optimised by Adam
through the sign's straight-through estimator, the loss the model was trained with (5 L1 +
8 LPIPS, LPIPS on a few random frames per step) summed over several kept plane counts, so
every cut of the stream is served. (Lever 14 of the model card did this with L1 + MSE: PSNR
+1.7 dB, LPIPS nearly unchanged.) The original and the refined bits are then coded by the
shipped coder (one chunk, no hold), decoded at each plane count and scored on every frame;
the refined curve's LPIPS BD-rate against the original's says whether the flips buy more
than they cost. No format change: a decoder reads refined bits as any others.

    python benchmarks/refine_probe.py [NAME=]CLIP.y4m [...] [--names a,b,...]
        [--steps 20] [--lr 0.05] [--train-planes 4,16,64] [--planes 2,4,8,16,32,64]
        [--lpips-frames 6] [--device cpu] [--out results.md]

`vtoken bench` leaves its references (33 frames at 640x360) in .cache/bench/refs.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import clip_probe


def refine(model, lpips, video, z0, train_planes, steps: int, lr: float, lpips_frames: int, seed: int = 0):
    """z after `steps` Adam steps on 5 L1 + 8 LPIPS of the decoded clip, summed over the kept
    plane counts `train_planes`; the decoder's weights are not touched."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    t = video.shape[2]
    for _ in range(steps):
        q = z + (torch.sign(z) - z).detach()  # the sign forward, the identity backward
        loss = z.new_zeros(())
        idx = torch.randperm(t, generator=gen)[:lpips_frames]
        x = video[0].permute(1, 0, 2, 3)[idx]
        for k in train_planes:
            mask = (torch.arange(q.shape[1]) < k).view(1, -1, 1, 1, 1).to(q.dtype)
            y = model.decoder(q * mask)
            loss = loss + 5 * (y - video).abs().mean() + 8 * lpips(y[0].permute(1, 0, 2, 3)[idx], x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return z.detach()


def curve(model, coder_for, video, ref, bits, planes, device):
    """[(plane count, coded bytes, LPIPS)] of `bits` [1, K, T', H', W'] cut at each count."""
    import torch

    from vtoken.codec.frames import to_frames
    from vtoken.metrics.lpips import lpips_frames

    coder = coder_for(model)
    coder.reset()
    sizes = np.cumsum([len(s) for s in coder.encode(np.ascontiguousarray(bits[0].numpy()))])
    out = []
    for k in planes:
        with torch.inference_mode():
            video = model.decode_bits(bits, planes=k)
            frames = to_frames(video, video.shape[2], video.shape[3], video.shape[4])
        out.append((k, int(sizes[k - 1]), float(lpips_frames(ref, frames, device).mean())))
    return out


def bd_cells(before, after) -> tuple[str, float]:
    """LPIPS BD-rate of curve `after` against `before` (each [(planes, bytes, LPIPS)]) as a
    table cell, and the BD-metric."""
    from vtoken.metrics.bdrate import bd_metric, bd_rate

    curves = ([s for _, s, _ in before], [q for _, _, q in before], [s for _, s, _ in after], [q for _, _, q in after])
    rate = bd_rate(*curves, higher_is_better=False)
    show = f"{rate.value:+.1f} %" if rate.value is not None else f"undefined ({rate.reason})"
    return show, bd_metric(*curves).value


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--train-planes", default="4,16,64")
    ap.add_argument("--planes", default="2,4,8,16,32,64")
    ap.add_argument("--lpips-frames", type=int, default=6)
    args = ap.parse_args(argv)
    import torch

    from vtoken.codec.frames import to_tensor
    from vtoken.entropy import coder_for
    from vtoken.models import load_model
    from vtoken.train.losses import load_lpips

    model = load_model(None, args.device).requires_grad_(False)
    lpips = load_lpips(args.device)
    train_planes = [int(p) for p in args.train_planes.split(",")]
    planes = [int(p) for p in args.planes.split(",")]
    lines = clip_probe.header("Test-time refinement of the bits for LPIPS, decoder fixed", "refine_probe.py", argv,
                              args.device, "the default model, one chunk per clip, no hold; bytes are the coder's "
                              "segments for the kept planes (no header)")
    lines += ["", "| clip | planes | bytes, original | bytes, refined | LPIPS, original | LPIPS, refined | bits flipped |",
              "|---|---|---|---|---|---|---|"]
    summary = []
    for name, clip in clip_probe.named_clips(ap, args):
        ref = clip_probe.frames(clip)
        video = to_tensor(ref, "cpu")
        with torch.inference_mode():
            z0 = model.encode(video)
        z0 = z0.clone()
        start = time.perf_counter()
        z = refine(model, lpips, video, z0, train_planes, args.steps, args.lr, args.lpips_frames)
        seconds = time.perf_counter() - start
        b0, b1 = (z0 >= 0).to(torch.uint8), (z >= 0).to(torch.uint8)
        before = curve(model, coder_for, video, ref, b0, planes, args.device)
        after = curve(model, coder_for, video, ref, b1, planes, args.device)
        for (k, s0, q0), (_, s1, q1) in zip(before, after):
            flipped = float((b0[:, :k] != b1[:, :k]).float().mean())
            lines.append(f"| {name} | {k} | {s0} | {s1} | {q0:.4f} | {q1:.4f} | {100 * flipped:.1f} % |")
            print(lines[-1], flush=True)
        show, metric = bd_cells(before, after)
        summary.append(f"| {name} | {show} | {metric:+.4f} | {seconds:.0f} s |")
    lines += ["", "## Refined against original (LPIPS; negative is better)", "",
              "| clip | BD-rate | BD-metric | refinement time |", "|---|---|---|---|"] + summary
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
