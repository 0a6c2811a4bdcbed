"""Can the small encoder send the bits the search finds? The default model's one-pass bits of a
clip against those of another encoder (a training run's checkpoint, e.g. the default's encoder
trained on that clip alone with the decoder fixed) and, optionally, the encoder's search
(refine_probe.refine for 8 and 64 planes); every series is decoded by the default's decoder,
coded by its coder (one chunk, no hold) and scored at each plane count. Run it on the clip the
checkpoint learnt and on clips it has not seen.

    python benchmarks/encoder_overfit_probe.py [NAME=]CLIP.y4m [...] --run RUN_DIR
        [--which model|ema] [--search-steps 12] [--planes 2,4,8,16,32,64] [--out results.md]

The checkpoint's encoder tensors replace the default's; its decoder, if it has one, is not read.
"""

from __future__ import annotations

import copy
import sys

import clip_probe
import refine_probe


def main(argv=None) -> int:
    ap = clip_probe.parser(__doc__)
    ap.add_argument("--run", required=True, help="training run folder (its latest checkpoint)")
    ap.add_argument("--which", default="model", choices=("model", "ema"), help="the checkpoint's raw or EMA weights")
    ap.add_argument("--search-steps", type=int, default=0, help="also the default's search, this many steps")
    ap.add_argument("--planes", default="2,4,8,16,32,64")
    args = ap.parse_args(argv)
    import torch

    from vtoken.codec.frames import to_tensor
    from vtoken.entropy import coder_for
    from vtoken.models import load_model
    from vtoken.train import checkpoint as ckpt
    from vtoken.train.losses import load_lpips

    planes = [int(p) for p in args.planes.split(",")]
    model = load_model(None, args.device).requires_grad_(False)
    step, state, _ = ckpt.load_checkpoint(args.run)
    other = copy.deepcopy(model)
    encoder = {k: v for k, v in state[args.which].items() if k.startswith("encoder.")}
    missing = [k for k in other.state_dict() if k.startswith("encoder.") and k not in encoder]
    if missing:
        ap.error(f"{args.run}: its encoder lacks {len(missing)} of the default's tensors ({missing[0]}, ...)")
    other.load_state_dict(encoder, strict=False)
    lpips = load_lpips(args.device) if args.search_steps else None
    lines = clip_probe.header("The default's one-pass bits against another encoder's and the search's",
                              "encoder_overfit_probe.py", argv, args.device,
                              f"the run's {args.which} weights at step {step}; the default's decoder and coder, one "
                              "chunk per clip, no hold; bytes are the coder's segments for the kept planes")
    lines += ["", "| clip | series | planes | bytes | LPIPS | bits differing from the default's |", "|---|---|---|---|---|---|"]
    summary = []
    for name, clip in clip_probe.named_clips(ap, args):
        ref = clip_probe.frames(clip)
        video = to_tensor(ref, "cpu")
        with torch.inference_mode():
            z0 = model.encode(video).clone()
            series = {"default": z0 >= 0, "run": other.encode(video) >= 0}
        if args.search_steps:
            z = refine_probe.refine(model, lpips, video, z0, [8, 64], args.search_steps, 0.08, 6)
            series[f"search {args.search_steps}"] = z >= 0
        curves = {}
        for label, signs in series.items():
            bits = signs.to(torch.uint8)
            curves[label] = refine_probe.curve(model, coder_for, video, ref, bits, planes, args.device)
            for k, size, q in curves[label]:
                differ = float((signs[:, :k] != series["default"][:, :k]).float().mean())
                lines.append(f"| {name} | {label} | {k} | {size} | {q:.4f} | {100 * differ:.1f} % |")
                print(lines[-1], flush=True)
        base = curves["default"]
        for label, c in list(curves.items())[1:]:
            show, metric = refine_probe.bd_cells(base, c)
            summary.append(f"| {name} | {label} | {show} | {metric:+.4f} |")
    lines += ["", "## Against the default's one-pass bits (LPIPS; negative is better)", "",
              "| clip | series | BD-rate | BD-metric |", "|---|---|---|---|"] + summary
    return clip_probe.finish(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
