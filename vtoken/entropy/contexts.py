"""Context features of one bit-plane of one latent frame, computed as whole-frame numpy arrays.

Every bit is coded in one of three passes over the frame: pass A (h and w even) sees no bit
of its own plane in this frame; pass D (h and w odd) sees its 4 diagonal neighbours, all in
pass A; pass B ((h + w) odd) sees its 4 direct neighbours, all in passes A and D. On top of
that a bit may see (the truncation rule: a stream cut after plane k must still decode
planes < k)

* the same plane in the previous latent frame ("temporal": the co-located bit and the sum
  of its 4 neighbours, after block motion compensation, see motion.py), when the decoder
  has it;
* earlier planes of the same frame: how many of them changed against their (motion-
  compensated) previous frame at this position (what earlier planes did not change, this
  one rarely does), or, without temporal context, the value of plane k-1 here.

Context numbering (per plane; the adaptive model keeps one pair of counts per context):

    temporal, pass A    0 .. 29    prev(2) x prev-neighbour-sum(5) x earlier-planes-changed(3)
    temporal, pass D   30 .. 479   the above x diagonal-sum(5) x diagonals-changed(3)
    temporal, pass B  480 .. 929   the above x same-plane-neighbour-sum(5) x neighbours-changed(3)
    intra, pass A     930 .. 931   plane k-1 bit(2)
    intra, pass D     932 .. 941   plane k-1 bit(2) x diagonal-sum(5)
    intra, pass B     942 .. 951   plane k-1 bit(2) x same-plane-neighbour-sum(5)

The coder's context is that number plus 952 times the cross-plane bucket of the position
(crossplane.py; 0 without a predictor, which leaves format 1's contexts as they were, and
the first 952 of the table): N_CONTEXTS = 952 * N_BUCKETS.

Changing anything here changes the format: bump FORMAT_VERSION in coder.py.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .crossplane import N_BUCKETS

N_TEMPORAL_A = 2 * 5 * 3
N_TEMPORAL_B = N_TEMPORAL_A * 5 * 3  # pass D and pass B each
N_INTRA_A = 2
N_INTRA_B = 2 * 5  # pass D and pass B each
OFF_TD = N_TEMPORAL_A
OFF_TB = OFF_TD + N_TEMPORAL_B
OFF_IA = OFF_TB + N_TEMPORAL_B
OFF_ID = OFF_IA + N_INTRA_A
OFF_IB = OFF_ID + N_INTRA_B
N_BASE_CONTEXTS = OFF_IB + N_INTRA_B  # format 1's contexts
N_CONTEXTS = N_BASE_CONTEXTS * N_BUCKETS


@lru_cache(maxsize=16)
def pass_positions(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat raster indices of passes A (h, w even), D (h, w odd) and B ((h+w) odd), in order."""
    yy, xx = np.indices((h, w))
    flat = np.arange(h * w, dtype=np.int64).reshape(h, w)
    out = []
    for mask in ((yy % 2 == 0) & (xx % 2 == 0), (yy % 2 == 1) & (xx % 2 == 1), (yy + xx) % 2 == 1):
        idx = flat[mask]
        idx.setflags(write=False)
        out.append(idx)
    return out[0], out[1], out[2]


def neighbour_sum(x: np.ndarray) -> np.ndarray:
    """Sum of the 4 neighbours of every position (outside the frame counts as 0), int64."""
    h, w = x.shape
    p = np.zeros((h + 2, w + 2), dtype=np.int64)
    p[1:-1, 1:-1] = x
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]


def diagonal_sum(x: np.ndarray) -> np.ndarray:
    """Sum of the 4 diagonal neighbours of every position (outside the frame counts as 0)."""
    h, w = x.shape
    p = np.zeros((h + 2, w + 2), dtype=np.int64)
    p[1:-1, 1:-1] = x
    return p[:-2, :-2] + p[:-2, 2:] + p[2:, :-2] + p[2:, 2:]


def temporal_base(prev: np.ndarray, changed_below: np.ndarray) -> np.ndarray:
    """Pass-A context (0..29) of every position, from the previous frame of this plane and the
    number of earlier planes that changed at that position."""
    return prev.astype(np.int64) * 15 + neighbour_sum(prev) * 3 + np.minimum(changed_below, 2)


def temporal_d(base: np.ndarray, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Pass-D context of every position; `cur` must hold the decoded pass-A bits."""
    flips = diagonal_sum(cur ^ prev)
    return OFF_TD + base * 15 + diagonal_sum(cur) * 3 + np.minimum(flips, 2)


def temporal_b(base: np.ndarray, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Pass-B context of every position; `cur` must hold the decoded pass-A and D bits."""
    flips = neighbour_sum(cur ^ prev)
    return OFF_TB + base * 15 + neighbour_sum(cur) * 3 + np.minimum(flips, 2)


def intra_a(below: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Pass-A context without temporal context: the bit of plane k-1 (0 for plane 0)."""
    if below is None:
        return np.full(shape, OFF_IA, dtype=np.int64)
    return OFF_IA + below.astype(np.int64)


def intra_d(below: np.ndarray | None, cur: np.ndarray) -> np.ndarray:
    """Pass-D context without temporal context; `cur` must hold the decoded pass-A bits."""
    base = 0 if below is None else below.astype(np.int64) * 5
    return OFF_ID + base + diagonal_sum(cur)


def intra_b(below: np.ndarray | None, cur: np.ndarray) -> np.ndarray:
    """Pass-B context without temporal context; `cur` must hold the decoded pass-A, D bits."""
    base = 0 if below is None else below.astype(np.int64) * 5
    return OFF_IB + base + neighbour_sum(cur)
