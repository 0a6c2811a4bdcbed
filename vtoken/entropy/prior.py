"""The "second stage": context statistics of a frozen tokenizer's bits, and rate estimates."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .coder import BitplaneCoder, check_bits
from .crossplane import CrossPlanePredictor
from .contexts import N_CONTEXTS
from .walk import walk


class _Tally:
    """Counts every (plane, context, bit) seen, with no adaptation: the walk's Counts protocol."""

    def __init__(self, planes: int):
        self.hist = np.zeros((planes, N_CONTEXTS, 2), dtype=np.int64)
        self.fresh = np.ones(planes, dtype=bool)

    def probabilities(self, k: int, ctx: np.ndarray) -> np.ndarray:
        return np.zeros(len(ctx), dtype=np.int64)

    def update(self, k: int, ctx: np.ndarray, symbols: np.ndarray) -> None:
        self.hist[k] += np.bincount(ctx * 2 + symbols, minlength=2 * N_CONTEXTS).reshape(N_CONTEXTS, 2)

    def end_plane(self, k: int) -> None:
        pass


def fit_prior(chunks: Iterable[np.ndarray], bits: int, predictor: CrossPlanePredictor | None = None) -> np.ndarray:
    """Integer counts int64 [bits, N_CONTEXTS, 2] of the contexts of `chunks` (uint8 [K,T,H,W]).

    Each chunk is counted on its own (as a key chunk: no context from the chunk before), so
    chunks of unrelated clips can be mixed. Pass the result as `BitplaneCoder(bits, prior)`.
    """
    tally = _Tally(bits)
    for chunk in chunks:
        out = check_bits(chunk, bits)
        walk(tally, None, out, out.shape[0], lambda k, n, s: s, predictor=predictor, known=True)
    return tally.hist


def estimate_bits(
    chunks: Iterable[np.ndarray], bits: int, prior: np.ndarray | None = None, key_every: int = 0,
    predictor: CrossPlanePredictor | None = None,
) -> np.ndarray:
    """Ideal code length (float64 bits per plane, summed over chunks) of a stream of chunks
    coded with every plane kept; a key chunk every `key_every` chunks (0: only the first)."""
    coder = BitplaneCoder(bits, prior, predictor)
    total = np.zeros(bits)
    for i, chunk in enumerate(chunks):
        if key_every and i % key_every == 0:
            coder.reset()
        cost = coder.estimate(chunk)
        total[: len(cost)] += cost
        coder.commit(chunk, chunk.shape[0])
    return total
