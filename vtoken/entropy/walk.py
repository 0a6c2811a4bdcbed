"""The coding order of one chunk, shared by the encoder, the decoder, fit_prior and estimates.

Order: plane by plane (a segment per plane, so a stream cut after plane k still decodes planes
< k); inside a plane, latent frame by frame (the temporal context follows the block motion that
motion.py finds in earlier planes); inside a frame, passes A, D, B (contexts.py);
inside a pass, the adaptive counts are updated after each batch of bits. In the first chunk that
codes a plane (since reset) a pass is split into growing groups in raster order (1/16, 1/16,
1/8, 1/4, 1/2), so that young contexts learn quickly; later a pass is one batch (speed).
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from . import contexts as cx
from . import motion as mo
from .crossplane import CrossPlanePredictor, neighbour_signs
from .model import ONE

HALF = ONE >> 1  # a numerator at or above this predicts a 1

# Cumulative fractions of a pass after which the counts are updated (format-defining).
GROUP_SPLITS = (1, 2, 4, 8, 16)  # out of 16


class Counts(Protocol):
    fresh: np.ndarray  # bool per plane: not coded yet

    def probabilities(self, k: int, ctx: np.ndarray) -> np.ndarray: ...
    def update(self, k: int, ctx: np.ndarray, symbols: np.ndarray) -> None: ...
    def end_plane(self, k: int) -> None: ...


# sink(k, n, known) -> symbols: n are the integer probability numerators of a batch of plane k;
# `known` holds the batch's bits as `out` has them (the real bits when encoding, zeros when
# decoding); it returns the batch's bits, which the walk writes back into `out`.
Sink = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


def _group_bounds(n: int) -> list[tuple[int, int]]:
    cuts = [0] + [(n * s) >> 4 for s in GROUP_SPLITS]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def walk(
    counts: Counts,
    history: tuple[np.ndarray | None, np.ndarray] | None,
    out: np.ndarray,
    planes: int,
    sink: Sink,
    on_plane: Callable[[int], bool | None] | None = None,
    predictor: CrossPlanePredictor | None = None,
    known: bool = False,
    probe: Callable[[int, int, np.ndarray, np.ndarray], None] | None = None,
    limit: np.ndarray | None = None,
) -> int:
    """Code planes [0, planes) of `out` (uint8 [K', T, H, W], C-contiguous) in coding order,
    or fewer: after each plane k, `on_plane(k)` returning True stops the walk there. Returns
    the number of planes coded.

    `history` is None or (frame -2 as uint8 [P2, H, W] or None, frame -1 as uint8 [P, H, W]):
    the latent frames before this chunk as the decoder has them; planes >= P have no temporal
    context in frame 0. `counts` is updated. `predictor` adds the cross-plane bucket. `known`:
    `out` already holds every bit (encoding, estimating), so the predictor scores all planes
    in one product instead of plane by plane as a decoder must (the same buckets).
    `probe(k, t, positions, n)`, where given, sees each batch's numerators and where in latent
    frame t (flat indices) they fall: what the coder predicts where, for estimates.

    `limit` (uint8 [T, H, W], a plane map: entropy format 3) codes plane k only at the
    positions whose limit is above k. Elsewhere the bit is not sent: both sides set it to the
    value the coder predicts there (probability of a 1 at least one half), so that the
    contexts of the coded bits around it read a likely bit rather than a hole, and the counts
    learn nothing from it. The model reads such a bit as absent (0), not as that value.
    """
    _, t_len, h, w = out.shape
    # signs (2 * bit - 1) of the planes coded so far and their neighbour sums: the predictor's input
    signs = neighbours = all_buckets = None
    if predictor is not None and known and limit is None:
        # (with a limit, the filled bits are known only as the walk makes them: plane by plane)
        signs = out[:planes].reshape(planes, -1).astype(predictor.dtype) * 2 - 1
        neighbours = neighbour_signs(signs.reshape(planes, t_len, h, w)).reshape(planes, -1)
        all_buckets = predictor.all_buckets(signs, neighbours).reshape(planes, t_len, h * w)
    elif predictor is not None:
        signs = np.empty((planes, t_len * h * w), dtype=predictor.dtype)
        neighbours = np.empty_like(signs)
    bucket = np.zeros((t_len, h * w), dtype=np.int64)
    passes = cx.pass_positions(h, w)
    split = [_group_bounds(len(p)) for p in passes]
    whole = [[(0, len(p))] for p in passes]
    motion = [_FrameMotion() for _ in range(t_len)]

    def code_pass(k: int, flat: np.ndarray, pos: np.ndarray, ctx: np.ndarray, bounds) -> None:
        ctx = ctx + cx.N_BASE_CONTEXTS * bucket_t[pos]  # bucket_t: this frame's cross-plane buckets
        for a, b in bounds:
            p, c = pos[a:b], ctx[a:b]
            n = counts.probabilities(k, c)
            if limit_t is not None:
                sent = limit_t[p] > k
                if not sent.all():
                    flat[p[~sent]] = n[~sent] >= HALF  # not sent: the predicted bit
                    p, c, n = p[sent], c[sent], n[sent]
                    if not p.size:
                        continue
            if probe is not None:
                probe(k, t, p, n)
            sym = sink(k, n, flat[p])
            flat[p] = sym
            counts.update(k, c, sym.astype(np.int64))

    for k in range(planes):
        plane = out[k]
        # (frame -2, frame -1) on this chunk's time axis, where the decoder has plane k of them
        past = [None, None]
        if history is not None:
            for i, frame in enumerate(history):
                if frame is not None and k < frame.shape[0]:
                    past[i] = frame
        pos_a, pos_d, pos_b = passes
        bounds_a, bounds_d, bounds_b = split if counts.fresh[k] else whole
        if all_buckets is not None:
            bucket = all_buckets[k]
        elif predictor is not None:
            bucket = predictor.buckets(k, signs, neighbours).reshape(t_len, h * w)
        for t in range(t_len):
            bucket_t = bucket[t]
            limit_t = None if limit is None else limit[t].reshape(-1)
            cur = plane[t]
            flat = cur.reshape(-1)
            below = out[k - 1, t] if k > 0 else None
            prev_frame = out[:, t - 1] if t > 0 else past[1]
            if prev_frame is not None:
                before = out[:, t - 2] if t > 1 else past[t]
                if t == 1 and past[1] is None:
                    before = None
                prev, changed = motion[t].context(k, out[:, t], prev_frame, before)
                base = cx.temporal_base(prev, changed)
                code_pass(k, flat, pos_a, base.reshape(-1)[pos_a], bounds_a)
                code_pass(k, flat, pos_d, cx.temporal_d(base, cur, prev).reshape(-1)[pos_d], bounds_d)
                ctx_b = cx.temporal_b(base, cur, prev)
            else:
                code_pass(k, flat, pos_a, cx.intra_a(below, (h, w)).reshape(-1)[pos_a], bounds_a)
                code_pass(k, flat, pos_d, cx.intra_d(below, cur).reshape(-1)[pos_d], bounds_d)
                ctx_b = cx.intra_b(below, cur)
            code_pass(k, flat, pos_b, ctx_b.reshape(-1)[pos_b], bounds_b)
        if signs is not None and all_buckets is None:
            np.multiply(plane.reshape(-1), 2.0, out=signs[k])
            signs[k] -= 1.0
            neighbours[k] = neighbour_signs(signs[k].reshape(t_len, h, w)).reshape(-1)
        counts.end_plane(k)
        if on_plane is not None and on_plane(k):
            return k + 1
    return planes


class _FrameMotion:
    """Motion field and changed-plane counts of one latent frame, grown plane by plane."""

    def __init__(self) -> None:
        self.cost: np.ndarray | None = None  # [S, Hb, Wb] block mismatches of planes seen
        self.index: np.ndarray | None = None  # gather index of the field; None: no motion
        self.shifted: tuple[int, np.ndarray] | None = None  # (plane, its compensated prev)
        self.changed: np.ndarray | None = None
        self.k = 0  # planes counted so far

    def _shift(self, prev: np.ndarray) -> np.ndarray:
        return prev if self.index is None else mo.compensate(prev, self.index)

    def context(
        self, k: int, cur: np.ndarray, prev: np.ndarray, before: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(prev frame's plane k as seen through the motion field, number of planes < k that
        differ from their motion-compensated prediction); cur/prev/before are [K, H, W]
        stacks of frames t, t-1, t-2 (before: None if absent) whose planes < k are final.
        Called for k = 0, 1, 2, ... in order."""
        assert k == self.k, "planes must be visited in order"
        self.k += 1
        if k == 0:
            # Nothing below plane 0 to search with: extrapolate the motion of plane 0 from
            # frame t-2 to t-1 (planes <= k of earlier frames are allowed context).
            h, w = cur.shape[1:]
            self.changed = np.zeros((h, w), dtype=np.int64)
            if before is None:
                return prev[0], self.changed
            field = mo.best_field(mo.block_sums(mo.mismatch(prev[0], before[0])))
            if not field.any():
                return prev[0], self.changed
            return mo.compensate(prev[0], mo.gather_index(field, h, w)), self.changed
        if k <= mo.MOTION_PLANES:
            m = mo.block_sums(mo.mismatch(cur[k - 1], prev[k - 1]))
            self.cost = m if self.cost is None else self.cost + m
            field = mo.best_field(self.cost)
            h, w = cur.shape[1:]
            self.index = mo.gather_index(field, h, w) if field.any() else None
            self.changed = (cur[:k] != self._shift(prev[:k])).sum(axis=0, dtype=np.int64)
        else:
            # plane k-1 was compensated with this same (frozen) field on the previous call
            assert self.shifted is not None and self.shifted[0] == k - 1
            self.changed = self.changed + (cur[k - 1] != self.shifted[1])
        shifted = self._shift(prev[k])
        self.shifted = (k, shifted)
        return shifted, self.changed
