"""Quick reconstruction quality of a tokenizer per kept plane count (no entropy coding):
PSNR (RGB) and LPIPS of the first `frames` frames of each clip, scaled to a fixed size,
with the raw bits per pixel K' T' H' W' / (T H W) of the kept planes.

Each plane count also gets `by_phase`: the same metrics averaged by a frame's place in its
latent frame. The first frame is coded alone ("key"); after it, every latent frame stands
for `temporal_factor` frames, phases 1..tf in display order. A model that smears motion
inside a latent frame shows it here as a gap between the phases, which the clip mean hides.

This is the model card's quick table and the check between training runs; the codec
benchmark (vtoken bench) measures real files against x265/vvenc."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtoken.errors import InputError

from ..defaults import VIDEO_EXTENSIONS


def read_clip(path: Path, frames: int, size: tuple[int, int]) -> np.ndarray:
    """uint8 [T, H, W, 3]: the first `frames` frames scaled to size=(W, H) by swscale
    (bicubic, as ffmpeg's scale filter). Short clips repeat their last frame."""
    import av

    out: list[np.ndarray] = []
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        for frame in box.decode(stream):
            out.append(frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="BICUBIC"))
            if len(out) == frames:
                break
    if not out:
        raise InputError(f"{path}: no video frames")
    while len(out) < frames:
        out.append(out[-1])
    return np.stack(out)


def frame_phases(frames: int, temporal_factor: int) -> list[str]:
    """The phase of each frame: "key" for frame 0, then "1".."tf" within each latent frame."""
    return ["key"] + [str((i - 1) % temporal_factor + 1) for i in range(1, frames)]


def _phase_means(psnr: np.ndarray, lpips: np.ndarray, phases: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for ph in dict.fromkeys(phases):
        sel = np.array([q == ph for q in phases])
        out[ph] = {"psnr": round(float(psnr[sel].mean()), 3), "lpips": round(float(lpips[sel].mean()), 4),
                   "frames": int(sel.sum())}
    return out


def clips_in(path: str | os.PathLike) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    found = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_EXTENSIONS)
    if not found:
        raise InputError(f"no video clips in {path}")
    return found


@torch.no_grad()
def evaluate_model(model_spec, videos: str | os.PathLike, planes: list[int], *, frames: int = 17,
                   size: tuple[int, int] = (640, 360), device: str = "cpu", model=None) -> dict[str, Any]:
    """{"clips": {name: {planes: {psnr, lpips, bpp_raw, by_phase}}}, "mean": {planes: {...}}}."""
    from vtoken.metrics.lpips import get_lpips, lpips_frames
    from vtoken.metrics.psnr import psnr_rgb

    if model is None:
        from vtoken.models import load_model

        model = load_model(model_spec, device)
    lp = get_lpips(device)
    k_max = model.bits
    planes = [min(p, k_max) for p in planes]
    per_clip: dict[str, dict] = {}
    t0 = time.monotonic()
    for clip in clips_in(videos):
        ref = read_clip(clip, frames, size)
        video = torch.from_numpy(ref).to(device).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        bits = model.encode_bits(video)
        _, t_, h_, w_ = bits.shape[1:]
        phases = frame_phases(len(ref), model.temporal_factor)
        rows = {}
        for k in planes:
            # A model with plane heads encodes for the planes kept, as the codec does.
            coded = model.encode_bits(video, planes=k) if model.has_plane_heads else bits
            rec = model.decode_bits(coded, planes=k)[0]
            dist = ((rec.permute(1, 2, 3, 0).cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
            psnr = np.asarray(psnr_rgb(ref, dist), dtype=np.float64)
            lpips = np.asarray(lpips_frames(ref, dist, device, model=lp), dtype=np.float64)
            rows[str(k)] = {
                "psnr": round(float(psnr.mean()), 3),
                "lpips": round(float(lpips.mean()), 4),
                "bpp_raw": round(k * t_ * h_ * w_ / (frames * size[0] * size[1]), 5),
                "by_phase": _phase_means(psnr, lpips, phases),
            }
        per_clip[clip.name] = rows
    mean = {}
    for k in planes:
        r = [per_clip[c][str(k)] for c in per_clip]
        mean[str(k)] = {m: round(float(np.mean([x[m] for x in r])), 5) for m in ("psnr", "lpips", "bpp_raw")}
        mean[str(k)]["by_phase"] = {
            ph: {m: round(float(np.mean([x["by_phase"][ph][m] for x in r])), 4) for m in ("psnr", "lpips")}
            for ph in r[0]["by_phase"]
        }
    ident = getattr(model, "identity", None)
    return {
        "model": ident.short if ident is not None else None,
        "frames": frames,
        "size": f"{size[0]}x{size[1]}",
        "clips": per_clip,
        "mean": mean,
        "seconds": round(time.monotonic() - t0, 1),
    }
