"""Pack a training folder small enough to carry to the GPU machine (64 MiB in all there).

Videos are copied as published (they are small and already compressed); photos are
downscaled so their longest side is <= max_side and re-saved as JPEG (4:4:4). The folder
tree is kept, so every file stays traceable to its source and licence (the data folder's
own README and LICENSES; the model card names the sources of shipped weights)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from vtoken.errors import InputError, OutputError

from ..defaults import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from .data import fit_size, refuse_eval_path


def pack_training_data(src: str | os.PathLike, dst: str | os.PathLike, *, max_side: int = 1024,
                       quality: int = 90, max_video_mib: float = 8.0) -> dict[str, Any]:
    """Copy/re-encode `src` into `dst`; returns counts and bytes. Videos above
    `max_video_mib` are skipped (they would crowd out everything else in the carry)."""
    from PIL import Image

    refuse_eval_path(src)
    s, d = Path(src), Path(dst)
    if not s.is_dir():
        raise InputError(f"{src} is not a folder")
    if d.exists() and any(d.iterdir()):
        raise OutputError(f"{dst} exists and is not empty; remove it or choose another folder")
    n_video = n_photo = skipped = 0
    for f in sorted(p for p in s.rglob("*") if p.is_file()):
        rel = f.relative_to(s)
        ext = f.suffix.lower()
        if ext in VIDEO_EXTENSIONS:
            if f.stat().st_size > max_video_mib * 2**20:
                skipped += 1
                continue
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, d / rel)
            n_video += 1
        elif ext in IMAGE_EXTENSIONS:
            out = (d / rel).with_suffix(".jpg")
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(f) as im:
                im = im.convert("RGB")
                size = fit_size(im.width, im.height, max_side)
                if size != im.size:
                    im = im.resize(size, Image.LANCZOS)
                im.save(out, quality=quality, subsampling=0)
            n_photo += 1
    total = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
    return {"videos": n_video, "photos": n_photo, "skipped_videos": skipped, "bytes": total, "out": str(d)}
