"""A small mixed corpus for the corpus tests: videos of odd sizes, images, a bad file and a
file that is not media; and the records `vtoken.tokenize` gives for it, computed the plain way."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clips import make_clip, make_image


def make_corpus(root: Path) -> Path:
    """root/src with 4 good sources, one undecodable .mp4 and a .txt (skipped)."""
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "a.mp4", frames=20, size=(64, 48))           # 2 clips: 17 + 3 frames
    make_clip(src / "sub" / "b.mp4", frames=9, size=(80, 64), seed=1)
    make_image(src / "c.png", size=(40, 30), seed=2)
    make_image(src / "sub" / "d.jpg", size=(70, 50), seed=3)
    (src / "bad.mp4").write_bytes(b"this is not a video" * 10)
    (src / "notes.txt").write_text("not media\n")
    return src


def reference_records(path, model, clip_frames: int, max_side: int | None) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(first_frame, frame_count, clip frames, tokens) per clip, with vtoken.tokenize on the clip."""
    import vtoken
    from vtoken.corpus.sources import resize, scaled_size
    from vtoken.media import VideoReader

    with VideoReader(path) as reader:
        frames = np.stack(list(reader.frames()))
    w, h = scaled_size(frames.shape[2], frames.shape[1], max_side)
    out = []
    for first in range(0, len(frames), clip_frames):
        clip = resize(frames[first:first + clip_frames], w, h)
        out.append((first, len(clip), clip, vtoken.tokenize(clip, model=model, device="cpu")))
    return out
