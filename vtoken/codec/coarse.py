"""A coarser time grid than the model's: every s-th frame coded, the frames between blended.

With a stream temporal factor s times the model's, the encoder gives the model only some of
a chunk's frames (`coded_indices`) and the decoder rebuilds the others as the linear blend of
the two coded frames around each (`fill`). Each coded frame is one the chunk ends on or s, 2s,
... frames before it (and, in a key chunk, the chunk's first frame), so every chunk ends on a
coded frame: the first frames of the next chunk blend from it, and a decoder needs nothing
from a later chunk (no delay, seeking from a key chunk as before).

Why: at low rates the model's predicted latent frames cost more than a blend loses. On
slowly moving content, coding half the frames at more planes gives a better LPIPS at the same
rate than all frames at fewer planes; on fast motion the blend shows (ghosts), and the model's
own grid wins. `temporal_factor="auto"` measures which (factor_choice.py).

The blend is integer arithmetic on the decoded uint8 frames, so every decoder rebuilds the
same frames bit for bit."""

from __future__ import annotations

import numpy as np


def coded_indices(n: int, stride: int, key: bool) -> np.ndarray:
    """Indices, within a chunk of `n` frames, of the frames the model codes: the last frame and
    every `stride`-th before it, and a key chunk's first frame (it starts the causal stream).
    A key chunk codes 1 + ceil((n - 1) / stride) frames, a continuing chunk ceil(n / stride)."""
    if n < 1 or stride < 1:
        raise ValueError(f"a chunk of {n} frames at stride {stride}")
    tail = np.arange(n - 1, 0 if key else -1, -stride)[::-1]
    return np.concatenate([[0], tail]).astype(np.int64) if key else tail.astype(np.int64)


def fill(coded: np.ndarray, n: int, stride: int, key: bool, previous: np.ndarray | None) -> np.ndarray:
    """The chunk's `n` frames, uint8 [n, H, W, 3], from its decoded coded frames `coded`
    (uint8 [len(coded_indices(n, stride, key)), H, W, 3]). A frame between two coded frames is
    their blend, weighted by distance; a continuing chunk's frames before its first coded one
    blend from `previous` (the last frame of the chunk before: a coded one), or repeat the
    first coded frame when there is none."""
    at = coded_indices(n, stride, key)
    if len(coded) != len(at):
        raise ValueError(f"{len(coded)} decoded frames for {len(at)} coded ones")
    if stride == 1:
        return coded
    anchors = [coded[j] for j in range(len(at))]
    where = list(at)
    if not key:
        where.insert(0, -1)
        anchors.insert(0, coded[0] if previous is None else previous)
    out = np.empty((n, *coded.shape[1:]), dtype=np.uint8)
    for j in range(1, len(where)):
        a, b = where[j - 1], where[j]
        left, right = anchors[j - 1].astype(np.uint16), anchors[j].astype(np.uint16)
        gap = b - a
        for i in range(max(a + 1, 0), b):
            out[i] = (left * (b - i) + right * (i - a) + gap // 2) // gap
        out[b] = anchors[j]
    if key:
        out[0] = anchors[0]
    return out
