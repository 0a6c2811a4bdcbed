"""Block motion for the temporal context, estimated from earlier planes (integer, vectorised).

Plane k may look at planes < k of the current frame and the previous one, so the decoder can
repeat this search: for every block of BLOCK x BLOCK latent positions pick the shift (within
+-RADIUS) under which the previous frame's earlier planes best match the current frame's,
and use the previous frame *shifted by it* as plane k's temporal context. A camera pan then
costs little more than a still scene. The field is refined with planes 0..MOTION_PLANES-1
and then frozen (cost). Plane 0 has nothing below it to search with: it extrapolates the
motion of its own plane from frame t-2 to t-1 (walk.py), when both frames are there.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

BLOCK = 8
RADIUS = 2
MOTION_PLANES = 3

# Zero shift first, then by length: argmin takes the first of equal costs.
SHIFTS = sorted(
    [(dy, dx) for dy in range(-RADIUS, RADIUS + 1) for dx in range(-RADIUS, RADIUS + 1)],
    key=lambda s: (abs(s[0]) + abs(s[1]), s),
)
SHIFT_LENGTH = np.array([abs(dy) + abs(dx) for dy, dx in SHIFTS], dtype=np.int64)
MISMATCH_WEIGHT = 4  # a block's cost: mismatches x 4 + shift length (ties: the shortest shift)


def mismatch(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """uint8 [S, H, W]: 1 where cur[h, w] != prev[h + dy, w + dx] (edges replicated)."""
    h, w = cur.shape
    p = np.pad(prev, RADIUS, mode="edge")
    out = np.empty((len(SHIFTS), h, w), dtype=np.uint8)
    for i, (dy, dx) in enumerate(SHIFTS):
        np.not_equal(cur, p[RADIUS + dy : RADIUS + dy + h, RADIUS + dx : RADIUS + dx + w], out=out[i])
    return out


def block_sums(m: np.ndarray) -> np.ndarray:
    """[S, H, W] -> int64 [S, ceil(H/B), ceil(W/B)] sums over blocks (edge blocks partial)."""
    _, h, w = m.shape
    rows = np.add.reduceat(m, np.arange(0, h, BLOCK), axis=1, dtype=np.int64)
    return np.add.reduceat(rows, np.arange(0, w, BLOCK), axis=2)


def best_field(block_cost: np.ndarray) -> np.ndarray:
    """Index into SHIFTS per block from block mismatch counts [S, Hb, Wb]."""
    # Mismatches weigh 4, shift length 1: among equal matches the shortest shift wins.
    return np.argmin(block_cost * MISMATCH_WEIGHT + SHIFT_LENGTH[:, None, None], axis=0)


@lru_cache(maxsize=16)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.indices((h, w))
    dy = np.array([s[0] for s in SHIFTS])
    dx = np.array([s[1] for s in SHIFTS])
    for a in (yy, xx, dy, dx):
        a.setflags(write=False)  # cached and shared by every coder in every thread: read-only
    return yy, xx, dy, dx


def gather_index(field: np.ndarray, h: int, w: int) -> np.ndarray:
    """Flat source index [H*W] of every position under the block shifts `field`."""
    yy, xx, dy, dx = _grid(h, w)
    per_pos = np.repeat(np.repeat(field, BLOCK, axis=0), BLOCK, axis=1)[:h, :w]
    ys = np.clip(yy + dy[per_pos], 0, h - 1)
    xs = np.clip(xx + dx[per_pos], 0, w - 1)
    return (ys * w + xs).reshape(-1)


def compensate(prev: np.ndarray, index: np.ndarray) -> np.ndarray:
    """prev [..., H, W] moved by a gather_index (edges replicated)."""
    flat = prev.reshape(prev.shape[:-2] + (-1,))
    return np.take(flat, index, axis=-1).reshape(prev.shape)
