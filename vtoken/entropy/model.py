"""Adaptive probabilities from integer counts: the part that must be bit-identical everywhere.

Each plane k has its own counts per context ("own", updated after every batch) and a pooled
table ("shared") that sums the statistics of planes <= k (updated at the end of each plane). The pooled table gives a young context of plane k a sensible
starting guess learnt from earlier planes (a flat start would pay ~1 bit for the first bits
of every context); restricting it to planes <= k keeps the truncation rule (a decoder that
never saw planes > k computes the same table).

The probability of a 1 is p = n / 2**PROB_BITS with n an integer in [1, 2**PROB_BITS - 1],
computed with int64 arithmetic only and handed to the range coder as the exact float64 n/2**16,
so encoder and decoder agree on every machine.
"""

from __future__ import annotations

import numpy as np

from vtoken.errors import ModelError

from .contexts import N_BASE_CONTEXTS, N_CONTEXTS

PROB_BITS = 16
ONE = 1 << PROB_BITS
MAX_TOTAL = 1 << 13  # counts are halved above this: adaptivity vs precision
SHARED_WEIGHT = 32  # pseudo-count of the pooled table inside a plane's estimate
PRIOR_TOTAL = 256  # a fitted prior is scaled down to at most this many counts per context


def _halve(counts: np.ndarray) -> None:
    """Halve (rounding up: a nonzero count stays nonzero) every context whose total is too big."""
    while True:
        over = counts[..., 0] + counts[..., 1] > MAX_TOTAL
        if not over.any():
            return
        counts[over] = (counts[over] + 1) >> 1


def _scaled(prior: np.ndarray) -> np.ndarray:
    total = prior.sum(axis=-1, keepdims=True)
    big = np.maximum(total, PRIOR_TOTAL)
    return 1 + (prior * PRIOR_TOTAL) // big


class AdaptiveCounts:
    """Integer counts for K planes; see the module docstring."""

    def __init__(self, planes: int, prior: np.ndarray | None = None):
        self.planes = planes
        if prior is None:
            prior = np.zeros((planes, N_CONTEXTS, 2), dtype=np.int64)
        prior = np.asarray(prior)
        if prior.ndim == 3 and prior.shape[1:] == (N_BASE_CONTEXTS, 2):
            # A format-1 prior (no cross-plane buckets): its counts belong to bucket 0.
            wide = np.zeros((prior.shape[0], N_CONTEXTS, 2), dtype=prior.dtype)
            wide[:, :N_BASE_CONTEXTS] = prior
            prior = wide
        if prior.ndim != 3 or prior.shape[1:] != (N_CONTEXTS, 2) or prior.dtype.kind not in "iu":
            raise ModelError(
                f"entropy prior has shape {prior.shape} ({prior.dtype}), expected integer "
                f"[planes, {N_CONTEXTS}, 2]; refit it with vtoken.entropy.fit_prior"
            )
        if (prior < 0).any():
            raise ModelError("entropy prior has negative counts; refit it with vtoken.entropy.fit_prior")
        full = np.zeros((planes, N_CONTEXTS, 2), dtype=np.int64)
        n = min(planes, prior.shape[0])
        full[:n] = prior[:n]  # planes the prior does not cover start flat
        # A plane's own counts start empty (or from the prior): a young context then follows
        # the pooled table instead of a flat 1/2; the pooled counts start at 1 so that every
        # probability stays defined and never reaches 0 or 1.
        self.own = _scaled(full) - 1
        self.shared = _scaled(np.cumsum(full, axis=0))
        # Planes not coded since the start: their first chunk adapts in small steps (walk.py).
        self.fresh = np.ones(planes, dtype=bool)
        self._pending = np.zeros((N_CONTEXTS, 2), dtype=np.int64)  # this plane, not yet pooled
        self.last_pooled = self._pending  # what the last end_plane pooled

    def copy(self) -> "AdaptiveCounts":
        new = object.__new__(AdaptiveCounts)
        new.planes = self.planes
        new.own = self.own.copy()
        new.shared = self.shared.copy()
        new.fresh = self.fresh.copy()
        new._pending = self._pending.copy()
        new.last_pooled = self.last_pooled
        return new

    def probabilities(self, k: int, ctx: np.ndarray) -> np.ndarray:
        """Integer numerators n (P(bit = 1) = n / 2**16) for contexts `ctx` of plane k."""
        # The same integer formula per context, computed where it costs least: over the
        # contexts [lo, hi) the batch can touch and then gathered, or per symbol.
        lo, hi = (int(ctx.min()), int(ctx.max()) + 1) if ctx.size else (0, 0)
        per_context = hi - lo <= ctx.size
        own = self.own[k, lo:hi] if per_context else np.take(self.own[k], ctx, axis=0)
        sh = self.shared[k, lo:hi] if per_context else np.take(self.shared[k], ctx, axis=0)
        st = sh[:, 0] + sh[:, 1]
        wt = np.minimum(st, SHARED_WEIGHT)  # the pooled guess weighs no more than its evidence
        num = own[:, 1] * st + wt * sh[:, 1]
        den = (own[:, 0] + own[:, 1] + wt) * st
        n = np.clip((num * ONE + (den >> 1)) // den, 1, ONE - 1)
        return n[ctx - lo] if per_context else n

    def update(self, k: int, ctx: np.ndarray, symbols: np.ndarray) -> None:
        """Add a coded batch of plane k to its own counts (the pooled tables wait for end_plane)."""
        self.fresh[k] = False
        if ctx.size == 0:
            return
        # Only contexts in [lo, hi) change; every other one is at most MAX_TOTAL already.
        lo, hi = int(ctx.min()), int(ctx.max()) + 1
        hist = np.bincount((ctx - lo) * 2 + symbols, minlength=2 * (hi - lo)).reshape(hi - lo, 2)
        own = self.own[k, lo:hi]
        own += hist
        _halve(own)
        self._pending[lo:hi] += hist

    def end_plane(self, k: int) -> None:
        """Pool plane k's statistics of this chunk into the tables of planes >= k. They stay
        readable as `last_pooled` (for `replayed`)."""
        touched = np.flatnonzero(self._pending.any(axis=1))
        if touched.size:  # contexts outside [lo, hi) do not change
            lo, hi = touched[0], touched[-1] + 1
            shared = self.shared[k:, lo:hi]
            shared += self._pending[lo:hi]
            _halve(shared)
        self.last_pooled, self._pending = self._pending, np.zeros_like(self._pending)

    def replayed(self, planes: list[tuple[np.ndarray, np.ndarray]]) -> "AdaptiveCounts":
        """A copy advanced as if planes 0..len-1 had been coded, from each one's final own
        counts and `last_pooled` (what the encoder records): exact, and far cheaper than a
        full copy of the counts after every plane."""
        new = self.copy()
        for k, (own, pooled) in enumerate(planes):
            new.own[k] = own
            new.fresh[k] = False
            new._pending = pooled
            new.end_plane(k)
        new._pending = np.zeros_like(self._pending)
        return new


def as_float(n: np.ndarray) -> np.ndarray:
    """The exact float64 n / 2**16 that the range coder receives."""
    return n.astype(np.float64) / ONE


def ideal_bits(n: np.ndarray, symbols: np.ndarray) -> float:
    """Ideal code length in bits of `symbols` under numerators `n`."""
    p1 = n.astype(np.float64) / ONE
    p = np.where(symbols == 1, p1, 1.0 - p1)
    return float(-np.log2(p).sum())
