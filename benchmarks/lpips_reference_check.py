"""Check vtoken's torchvision-free LPIPS against the reference ``lpips`` package.

Runs in a separate environment where ``import lpips`` works (torch + torchvision + lpips + av +
safetensors + scipy + pillow), never in the product venv, e.g.:

    python3 -m venv .refvenv
    .refvenv/bin/pip install torch torchvision lpips numpy av safetensors scipy pillow
    .refvenv/bin/python benchmarks/lpips_reference_check.py [--videos DIR] [--frames N]

It loads vtoken's converted AlexNet backbone into ``lpips.LPIPS(net='alex', pretrained=True,
pnet_rand=True)`` (the torchvision AlexNet left uninitialised so nothing is downloaded; the
v0.1 heads come from the lpips wheel itself), then compares per-frame distances and input
gradients with ``vtoken.metrics.lpips.LPIPS`` on real frames and distorted copies.
Writes a report on stdout; exits 1 if the largest difference is 1e-5 or more.
"""

from __future__ import annotations

import argparse
import io
from importlib import metadata
import platform
import sys
from pathlib import Path

import av
import lpips
import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vtoken.metrics.lpips import LPIPS, frames_to_tensor, weights_path  # noqa: E402

TOLERANCE = 1e-5


def read_frames(path: Path, n: int, size=(640, 360)) -> np.ndarray:
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24", width=size[0], height=size[1]))
            if len(out) == n:
                break
    return np.stack(out)


def jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    out = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return np.stack(out)


def distortions(frames: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    f = frames.astype(np.float64)
    down = [np.asarray(Image.fromarray(x).resize((x.shape[1] // 4, x.shape[0] // 4), Image.BILINEAR)
                       .resize((x.shape[1], x.shape[0]), Image.BILINEAR)) for x in frames]
    return {
        "identical": frames.copy(),
        "blur_s1.5": np.clip(ndimage.gaussian_filter(f, (0, 1.5, 1.5, 0)) + 0.5, 0, 255).astype(np.uint8),
        "noise_s8": np.clip(f + rng.normal(0, 8, f.shape) + 0.5, 0, 255).astype(np.uint8),
        "jpeg_q20": jpeg(frames, 20),
        "down_up_x4": np.stack(down),
        "next_frame": np.concatenate([frames[1:], frames[-1:]]),
    }


def reference_model(path: Path) -> torch.nn.Module:
    ref = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    sd = load_file(str(path))
    convs = {"slice1": ("0", "conv1"), "slice2": ("3", "conv2"), "slice3": ("6", "conv3"),
             "slice4": ("8", "conv4"), "slice5": ("10", "conv5")}
    loaded = 0
    for slice_name, (idx, ours) in convs.items():
        conv = getattr(ref.net, slice_name)._modules[idx]
        with torch.no_grad():
            conv.weight.copy_(sd[f"net.{ours}.weight"])
            conv.bias.copy_(sd[f"net.{ours}.bias"])
        loaded += 2
    assert loaded == 10
    # the heads were loaded by lpips itself from its wheel; check ours are the same numbers
    for i in range(5):
        theirs = getattr(ref, f"lin{i}").model[-1].weight
        assert torch.equal(theirs, sd[f"lin{i}.weight"]), f"head {i} differs from the lpips wheel"
    return ref.eval()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", default=str(ROOT.parent / "shared" / "data" / "eval" / "video"))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = weights_path()
    ours = LPIPS(path)
    ref = reference_model(path)
    rng = np.random.default_rng(0)

    print(f"# LPIPS reference check: vtoken.metrics.lpips.LPIPS vs lpips.LPIPS(net='alex', version='0.1')")
    print(f"python {platform.python_version()}, torch {torch.__version__}, torchvision "
          f"{torchvision.__version__}, lpips {metadata.version('lpips')}, "
          f"cpu {platform.machine()}, threads {args.threads}")
    print(f"weights: {path.name}")
    print(f"frames: first {args.frames} of each video in {args.videos}, scaled to 640x360 (PyAV rgb24)")
    print(f"{'video':28s} {'distortion':12s} {'n':>3s} {'mean LPIPS':>11s} {'max |diff|':>11s} {'max rel':>9s}")
    worst = 0.0
    count = 0
    for video in sorted(Path(args.videos).iterdir()):
        frames = read_frames(video, args.frames)
        for name, dist in distortions(frames, rng).items():
            with torch.no_grad():
                x0, x1 = frames_to_tensor(frames), frames_to_tensor(dist)
                a = ours(x0, x1).double().numpy()
                b = ref(x0, x1).reshape(-1).double().numpy()
            diff = np.abs(a - b)
            rel = float((diff / np.maximum(np.abs(b), 1e-12)).max()) if b.max() > 0 else 0.0
            worst = max(worst, float(diff.max()))
            count += len(a)
            print(f"{video.name[:28]:28s} {name:12s} {len(a):3d} {b.mean():11.6f} {diff.max():11.2e} {rel:9.2e}")

    # gradients with respect to the distorted input, as when LPIPS is a training loss
    x0 = frames_to_tensor(frames[:2])
    x1a = frames_to_tensor(jpeg(frames[:2], 20)).requires_grad_(True)
    x1b = x1a.detach().clone().requires_grad_(True)
    ours(x0, x1a).sum().backward()
    ref(x0, x1b).sum().backward()
    gdiff = float((x1a.grad - x1b.grad).abs().max())
    gscale = float(x1b.grad.abs().max())
    print(f"gradient wrt input (2 frames, jpeg_q20): max |diff| {gdiff:.2e} (max |grad| {gscale:.2e})")
    # control: the same comparison with the reference's backbone left random must fail loudly,
    # otherwise the zero differences above would prove nothing
    rand = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()
    with torch.no_grad():
        x0, x1 = frames_to_tensor(frames[:2]), frames_to_tensor(jpeg(frames[:2], 20))
        control = float((ours(x0, x1) - rand(x0, x1).reshape(-1)).abs().max())
    print(f"control (reference with a random backbone): max |diff| {control:.3e}")
    print(f"RESULT: {count} frame pairs, max |LPIPS diff| = {worst:.3e} "
          f"({'PASS' if worst < TOLERANCE else 'FAIL'}, tolerance {TOLERANCE:g})")
    return 0 if worst < TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
