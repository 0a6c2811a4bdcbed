"""The sources of a corpus: which files, in which order, and their clips.

Order is the order given, each folder's files sorted by path, so a rerun over the same inputs
numbers every source the same way (shards are named from these numbers). A clip is
`clip_frames` consecutive frames starting at `first_frame` (the last clip of a video may be
shorter), read at the source's size or downsized so that its longer side is `max_side`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..hashing import sha256_file

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".ts", ".m4v", ".mpg", ".mpeg", ".y4m", ".flv", ".wmv",
                  ".3gp", ".ogv", ".mxf", ".gif"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Source:
    """One input file. (path, size, mtime_ns) is how a rerun recognises it unchanged."""

    index: int
    path: str
    size: int
    mtime_ns: int

    def to_dict(self) -> dict:
        return asdict(self)


def _identity(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1  # a missing file is still a source: it fails with its own error
    return st.st_size, st.st_mtime_ns


def expand(paths, exclude=None) -> tuple[list[Source], list[dict]]:
    """Sources from files and folders (walked recursively, media suffixes only), and the
    entries skipped on the way: {"path", "reason"} for other files and duplicates. Nothing
    under `exclude` (the output folder, when it lies inside a source folder) is listed."""
    skip_root = os.path.abspath(exclude) + os.sep if exclude is not None else None
    found: list[str] = []
    skipped: list[dict] = []
    seen: set[str] = set()

    def add(path: str, explicit: bool) -> None:
        if path in seen:
            skipped.append({"path": path, "reason": "duplicate of an earlier source"})
            return
        seen.add(path)
        if not explicit and Path(path).suffix.lower() not in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
            skipped.append({"path": path, "reason": "not a video or image suffix"})
            return
        found.append(path)

    for given in paths:
        path = os.path.abspath(os.fspath(given))
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and
                                 not (skip_root and os.path.join(root, d) + os.sep == skip_root))
                for name in sorted(files):
                    if not name.startswith("."):
                        add(os.path.join(root, name), explicit=False)
        else:
            add(path, explicit=True)
    return [Source(i, p, *_identity(p)) for i, p in enumerate(found)], skipped


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) with the longer side at most `max_side`, aspect ratio kept."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 [T, H, W, 3] -> [T, height, width, 3]: antialiased bilinear in fp32 on the CPU,
    which computes each output pixel on its own, so the result does not depend on threads."""
    if frames.shape[1:3] == (height, width):
        return frames
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


@dataclass(frozen=True)
class SourceMeta:
    """What every record of a source repeats about it."""

    source: str
    source_sha256: str
    fps_num: int
    fps_den: int
    orig_width: int
    orig_height: int
    is_image: bool

    def to_dict(self) -> dict:
        return asdict(self)


def read_clips(path: str, clip_frames: int, max_side: int | None) -> tuple[SourceMeta, Iterator[tuple[int, np.ndarray]]]:
    """The source's metadata and an iterator of (first_frame, uint8 [t, h, w, 3]) clips.

    Raises vtoken.errors.InputError for a file that is not readable media."""
    from ..media import VideoReader

    digest = sha256_file(path)  # before the reader opens, so a failure here leaks no container
    reader = VideoReader(path)
    info = reader.info
    meta = SourceMeta(path, digest, info.fps.numerator, info.fps.denominator, info.width,
                      info.height, bool(info.is_image))
    width, height = scaled_size(info.width, info.height, max_side)

    def clips() -> Iterator[tuple[int, np.ndarray]]:
        first = 0
        with reader:
            for chunk in reader.chunks(clip_frames):
                yield first, resize(chunk, width, height)
                first += len(chunk)

    return meta, clips()
