"""Cross-plane prediction: what the earlier planes at and around a position say about plane k.

An LFQ encoder's channels are not independent: on training clips a logistic regression of
plane k on planes < k at the same latent position alone codes a typical plane in 0.3-0.6
bits per bit, where the spatial and temporal contexts reach about 0.6; the earlier planes'
4 neighbours take off another 0.01-0.07 beyond plane k's own neighbours. So each plane k gets
an integer linear score of the earlier planes' signs s_j = 2 * bit_j - 1 and of their sums
over the 4 neighbours in the same latent frame n_j (outside the frame counts as 0),

    score_k = bias[k] + sum_{j<k} weight[k, j] * s_j + neighbour_weight[k, j] * n_j
                                                                   (fixed point, SCALE per logit)

and its logit is cut into N_BUCKETS bins of one logit each, which become one more context
dimension (contexts.py numbers them context + 952 * bucket). The weights are fitted at
export on training clips (`fit_crossplane`) and frozen as integers, so every machine computes
the same bucket: the score is an exact integer. Floating-point sums of integers are exact in
any order of summation while every partial sum stays below 2**24 (float32) or 2**53
(float64) in magnitude; a predictor computes in float32 (half the memory traffic) when its
weights guarantee the first bound, in float64 otherwise. Only planes < k are read, so a
stream cut after any plane still decodes (the truncation rule).

Without a predictor every bucket is 0, and the contexts and the coded bytes are those of
format 1.
"""

from __future__ import annotations

import numpy as np

from vtoken.errors import ModelError

SCALE = 64  # score units per logit
N_BUCKETS = 8  # logit bins of width 1: (-inf, -3), [-3, -2), ..., [2, 3), [3, inf)
MAX_WEIGHT = 1 << 20  # far beyond any fitted weight; keeps every score exact


def neighbour_signs(signs: np.ndarray) -> np.ndarray:
    """Sum over the 4 neighbours of every position of `signs` [..., H, W] (outside = 0)."""
    pad = [(0, 0)] * (signs.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(signs, pad)
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]


class CrossPlanePredictor:
    """Integer weights int64 [K, K] for the signs and [K, K] for their neighbour sums (both
    strictly lower triangular: plane k reads planes < k) and biases int64 [K], in units of
    1/SCALE logit."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, neighbour_weight: np.ndarray):
        weight, bias, nweight = np.asarray(weight), np.asarray(bias), np.asarray(neighbour_weight)
        k = bias.shape[0] if bias.ndim == 1 else -1
        if (weight.shape != (k, k) or nweight.shape != (k, k)
                or any(a.dtype.kind not in "iu" for a in (weight, bias, nweight))):
            raise ModelError(f"cross-plane predictor has weights {weight.shape} {weight.dtype} and {nweight.shape} "
                             f"{nweight.dtype}, bias {bias.shape} {bias.dtype}; expected integer [K, K], [K, K], [K]")
        if np.triu(weight).any() or np.triu(nweight).any():
            raise ModelError("cross-plane predictor reads planes >= its own (weights must be strictly lower triangular)")
        if max(np.abs(a).max(initial=0) for a in (weight, bias, nweight)) > MAX_WEIGHT:
            raise ModelError("cross-plane predictor weights are out of range")
        self.planes = k
        self.weight = weight.astype(np.int64)
        self.neighbour_weight = nweight.astype(np.int64)
        self.bias = bias.astype(np.int64)
        # |signs| <= 1 and |neighbours| <= 4: no partial sum of a score exceeds this bound.
        bound = int((np.abs(self.weight) + 4 * np.abs(self.neighbour_weight)).sum(axis=1).max(initial=0))
        self.dtype = np.float32 if bound < 1 << 24 else np.float64
        self._weights_f = np.concatenate([self.weight, self.neighbour_weight], axis=1).astype(self.dtype)

    def _to_buckets(self, score: np.ndarray) -> np.ndarray:
        return np.clip(np.floor_divide(score, SCALE) + N_BUCKETS // 2, 0, N_BUCKETS - 1)

    def buckets(self, k: int, signs: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
        """int64 buckets [N] of plane k from [>= k, N] arrays of `self.dtype`: `signs` (2 * bit
        - 1) and `neighbours` (their neighbour_signs) of planes 0..k-1 (rows from k on are
        unread). What a decoder can compute after decoding plane k - 1."""
        if k >= self.planes:
            return np.zeros(signs.shape[1], dtype=np.int64)
        score = self.bias[k] + np.zeros(signs.shape[1], dtype=np.int64)
        if k:
            w = self._weights_f  # exact: see the module docstring
            score += (w[k, :k] @ signs[:k] + w[k, self.planes:self.planes + k] @ neighbours[:k]).astype(np.int64)
        return self._to_buckets(score)

    def all_buckets(self, signs: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
        """int64 buckets [P, N] of planes 0..P-1 at once from the [P, N] `signs` and
        `neighbours` of all of them: the same integers as P calls of `buckets`, in one matrix
        product (an encoder knows every plane up front)."""
        p = signs.shape[0]
        score = np.zeros((p, signs.shape[1]), dtype=np.int64)
        m = min(p, self.planes)
        if m:
            w = self._weights_f  # strictly lower triangular: plane k reads rows < k only
            score[:m] = (w[:m, :m] @ signs[:m] + w[:m, self.planes:self.planes + m] @ neighbours[:m]).astype(np.int64)
            score[:m] += self.bias[:m, None]
        buckets = self._to_buckets(score)
        buckets[m:] = 0
        return buckets


def fit_crossplane(chunks: list[np.ndarray], bits: int, iterations: int = 200) -> CrossPlanePredictor:
    """Fit the predictor on uint8 bit chunks [K, T, H, W] of training clips: one logistic
    regression per plane on the earlier planes' signs and neighbour sums, all planes at once,
    then rounded."""
    import torch

    if any(c.shape[0] != bits for c in chunks):
        raise ModelError(f"chunks must have {bits} planes")
    signs = [c.astype(np.float32) * 2 - 1 for c in chunks]
    s = torch.from_numpy(np.concatenate([c.reshape(bits, -1) for c in signs], axis=1).T.copy())  # [N, K]
    n = torch.from_numpy(np.concatenate([neighbour_signs(c).reshape(bits, -1) for c in signs], axis=1).T.copy())
    y = (s + 1) / 2
    mask = torch.tril(torch.ones(bits, bits), diagonal=-1)
    w = torch.zeros(2, bits, bits, requires_grad=True)
    b = torch.zeros(bits, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        wm = w * mask
        logits = s @ wm[0].T + n @ wm[1].T + b
        # A little L2 keeps weights of rarely informative planes near 0 (the fit sees few clips).
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + 1e-5 * wm.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        weight, nweight = (torch.round(w[i] * mask * SCALE).clamp(-MAX_WEIGHT, MAX_WEIGHT).to(torch.int64).numpy()
                           for i in range(2))
        bias = torch.round(b * SCALE).clamp(-MAX_WEIGHT, MAX_WEIGHT).to(torch.int64).numpy()
    return CrossPlanePredictor(weight, bias, nweight)
