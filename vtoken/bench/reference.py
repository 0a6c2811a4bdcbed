"""The reference every codec is fed and judged against: the source decoded once to 8-bit 4:2:0
at the benchmark size, first N frames, written as y4m.

Scaling is ffmpeg's `scale` filter with bicubic interpolation, output in limited range; frames
are taken as decoded (`-fps_mode passthrough`: a variable-frame-rate source is neither
duplicated nor dropped). References are cached by the sha256 of the source file plus these
settings, so a machine without the static ffmpeg (the GPU machine) can reuse them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..errors import InputError
from ..hashing import sha256_file
from .ffmpeg import FfmpegError, run_timed
from .yuv import read_y4m

SCALE_FLAGS = "bicubic"


def reference_filter(width: int, height: int) -> str:
    return f"scale={width}:{height}:flags={SCALE_FLAGS}:out_range=tv,format=yuv420p"


def reference_command(exe: str, src: str | Path, dst: str | Path, frames: int, width: int, height: int) -> list[str]:
    """The exact ffmpeg command line that makes the reference y4m."""
    return [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-map", "0:v:0", "-an",
            "-frames:v", str(int(frames)), "-fps_mode", "passthrough", "-vf", reference_filter(width, height),
            "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(dst)]


def reference_key(source_sha256: str, frames: int, width: int, height: int) -> str:
    settings = {"source": source_sha256, "frames": int(frames), "width": int(width), "height": int(height),
                "filter": reference_filter(width, height), "format": "y4m yuv420p"}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def make_reference(exe: str | None, src: str | Path, workdir: str | Path, frames: int, width: int, height: int,
                   cache_dir: str | Path | None = None) -> tuple[Path, dict]:
    """Reference y4m for `src` in `workdir`, from the cache when there, else made with ffmpeg
    (and stored in the cache). Returns its path and a JSON-ready description."""
    src = Path(src)
    if not src.is_file():
        raise InputError(f"{src}: no such video file")
    src_sha = sha256_file(src)
    key = reference_key(src_sha, frames, width, height)
    dst = Path(workdir) / f"{src.stem}-{width}x{height}-{frames}f.y4m"
    cached = Path(cache_dir) / "refs" / f"{key}.y4m" if cache_dir else None
    command = reference_command(exe or "ffmpeg", src, dst, frames, width, height)
    if cached is not None and cached.is_file():
        shutil.copyfile(cached, dst)
        origin = "cache"
    elif exe is None:
        raise FfmpegError(f"no static ffmpeg to make the reference of {src.name} and none cached under "
                          f"{Path(cache_dir or '.') / 'refs'}; pip install imageio-ffmpeg, or copy the cache "
                          "folder of a machine that ran the benchmark")
    else:
        run_timed(command)
        origin = "ffmpeg"
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".part")
            shutil.copyfile(dst, tmp)
            tmp.replace(cached)
    header, planes = read_y4m(dst)
    if (header.width, header.height) != (width, height):
        raise InputError(f"{src.name}: reference came out {header.width}x{header.height}, expected {width}x{height}")
    info = {"source": src.name, "source_sha256": src_sha, "y4m_sha256": sha256_file(dst), "frames": int(planes.shape[0]),
            "width": width, "height": height, "fps": [header.fps_num, header.fps_den],
            "filter": reference_filter(width, height), "origin": origin,
            "command": ["ffmpeg", *[Path(a).name if a in (str(src), str(dst)) else a for a in command[1:]]]}
    return dst, info
