"""How close `--bpp` lands to its target (issue 11): a generated clip (with or without an AAC
track) is encoded at every-plane and one-plane rates to find the reachable range, then at
targets across and beyond it; each line gives target, achieved, error and the warning.

    python benchmarks/rate_accuracy.py [--model NAME|JSON] [--frames 97] [--size 160x96] [--audio]
        [--chunk-frames 17] [--out results.txt]

The rate counts the whole file (header, index, audio). A target within the reachable range
should land within 10 %; outside it, the encoder warns with the nearest reachable rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def machine() -> str:
    """CPU model, cores, torch and python versions: enough to compare runs."""
    import os
    import platform

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, no GPU used, torch {torch.__version__}, python {platform.python_version()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--frames", type=int, default=97)
    ap.add_argument("--size", default="160x96")
    ap.add_argument("--audio", action="store_true")
    ap.add_argument("--chunk-frames", type=int, default=17)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import torch

    import vtoken
    from clips import make_clip

    torch.set_num_threads(1)
    w, h = (int(v) for v in args.size.split("x"))
    lines = [f"rate_accuracy: {args.frames} frames {w}x{h}, chunk {args.chunk_frames}, audio {args.audio}, "
             f"model {args.model or 'default'}",
             f"command: python benchmarks/rate_accuracy.py {' '.join(argv if argv is not None else sys.argv[1:])}"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = make_clip(tmp / "in.mp4", frames=args.frames, size=(w, h), audio=args.audio, codec="libx264",
                        options={"crf": "0"})
        model = vtoken.load_model(args.model)
        enc = dict(model=model, device="cpu", chunk_frames=args.chunk_frames, overwrite=True)
        top = vtoken.encode(src, tmp / "all.mvt", **enc).bpp
        low = vtoken.encode(src, tmp / "one.mvt", planes=1, **enc).bpp
        lines.append(f"reachable: {low:.5f} bpp (1 plane per chunk) .. {top:.5f} bpp (all {model.config.bits} planes)")
        lines.append(f"{'target':>10} {'achieved':>10} {'error':>8}  warning")
        within, inside = 0, 0
        targets = [low * 0.5, low * 0.9] + [low + (top - low) * f for f in (0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.97)] \
            + [top * 1.5]
        for target in targets:
            res = vtoken.encode(src, tmp / "t.mvt", bpp=target, **enc)
            err = res.bpp / target - 1
            reachable = low <= target <= top
            inside += reachable
            within += reachable and abs(err) <= 0.10
            lines.append(f"{target:10.5f} {res.bpp:10.5f} {err * 100:+7.1f}%  {res.warnings[0] if res.warnings else '-'}")
        lines.append(f"within 10 %: {within} of {inside} reachable targets")
        lines.append(f"machine: {machine()}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
