"""Cross-plane prediction: what the earlier planes at a position say about plane k there.

An LFQ encoder's channels are not independent: on training clips a logistic regression of
plane k on planes < k at the same latent position alone codes a typical plane in 0.3-0.6
bits per bit, where the spatial and temporal contexts reach about 0.6. So each plane k gets
an integer linear score of the earlier planes' signs,

    score_k = bias[k] + sum_{j<k} weight[k, j] * (2 * bit_j - 1)     (fixed point, SCALE per logit)

and its logit is cut into N_BUCKETS bins of one logit each, which become one more context
dimension (contexts.py numbers them context + 952 * bucket). The weights are fitted at
export on training clips (`fit_crossplane`) and frozen as integers, so every machine computes
the same bucket: the score is an exact integer (float64 arithmetic on integers far below 2**53
is exact in any order of summation). Only planes < k are read, so a stream cut after any plane
still decodes (the truncation rule).

Without a predictor every bucket is 0, and the contexts and the coded bytes are those of
format 1.
"""

from __future__ import annotations

import numpy as np

from vtoken.errors import ModelError

SCALE = 64  # score units per logit
N_BUCKETS = 8  # logit bins of width 1: (-inf, -3), [-3, -2), ..., [2, 3), [3, inf)
MAX_WEIGHT = 1 << 20  # far beyond any fitted weight; keeps every score exact


class CrossPlanePredictor:
    """Integer weights int64 [K, K] (strictly lower triangular: plane k reads planes < k) and
    biases int64 [K], in units of 1/SCALE logit."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        weight, bias = np.asarray(weight), np.asarray(bias)
        k = bias.shape[0] if bias.ndim == 1 else -1
        if weight.shape != (k, k) or weight.dtype.kind not in "iu" or bias.dtype.kind not in "iu":
            raise ModelError(f"cross-plane predictor has weight {weight.shape} {weight.dtype} and bias "
                             f"{bias.shape} {bias.dtype}, expected integer [K, K] and [K]")
        if np.triu(weight).any():
            raise ModelError("cross-plane predictor reads planes >= its own (weight must be strictly lower triangular)")
        if np.abs(weight).max(initial=0) > MAX_WEIGHT or np.abs(bias).max(initial=0) > MAX_WEIGHT * k + MAX_WEIGHT:
            raise ModelError("cross-plane predictor weights are out of range")
        self.planes = k
        self.weight = weight.astype(np.int64)
        self.bias = bias.astype(np.int64)
        self._weight_f = self.weight.astype(np.float64)

    def buckets(self, k: int, signs: np.ndarray) -> np.ndarray:
        """int64 buckets [N] of plane k from `signs`: float64 [>= k, N] holding 2 * bit - 1 of
        planes 0..k-1 (rows from k on are not read)."""
        if k >= self.planes:
            return np.zeros(signs.shape[1], dtype=np.int64)
        score = self._weight_f[k, :k] @ signs[:k] if k else np.zeros(signs.shape[1])
        score = score.astype(np.int64) + self.bias[k]  # exact: integers far below 2**53
        return np.clip(np.floor_divide(score, SCALE) + N_BUCKETS // 2, 0, N_BUCKETS - 1)


def fit_crossplane(chunks: list[np.ndarray], bits: int, iterations: int = 200) -> CrossPlanePredictor:
    """Fit the predictor on uint8 bit chunks [K, T, H, W] of training clips: one logistic
    regression per plane on the earlier planes' signs, all planes at once, then rounded."""
    import torch

    x = np.concatenate([c.reshape(c.shape[0], -1) for c in chunks], axis=1).T  # [N, K]
    if x.shape[1] != bits:
        raise ModelError(f"chunks have {x.shape[1]} planes, expected {bits}")
    y = torch.from_numpy(x.astype(np.float32))
    s = y * 2 - 1
    mask = torch.tril(torch.ones(bits, bits), diagonal=-1)
    w = torch.zeros(bits, bits, requires_grad=True)
    b = torch.zeros(bits, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = s @ (w * mask).T + b
        # A little L2 keeps weights of rarely informative planes near 0 (the fit sees few clips).
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + 1e-5 * (w * mask).pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        weight = torch.round(w * mask * SCALE).clamp(-MAX_WEIGHT, MAX_WEIGHT).to(torch.int64).numpy()
        bias = torch.round(b * SCALE).clamp(-MAX_WEIGHT, MAX_WEIGHT).to(torch.int64).numpy()
    return CrossPlanePredictor(weight, bias)
