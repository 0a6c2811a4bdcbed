"""Plane maps (entropy format 3): how many bit-planes each block of a chunk's latent frames
sends, and their code.

A map holds one count per block of B x B latent positions (the last row and column of blocks
may be cut by the frame's edge) per latent frame, each in 0..top (top: the planes the chunk
coded). Plane k of a position is sent when its block's count is above k (walk.py); the model
reads the planes past a count as absent. A stream cut after plane j still decodes: every
block keeps min(count, j) planes.

The counts are coded with the binary range coder of the segments (constriction's Bernoulli,
probabilities n / 2**16 from integer counts, so every machine agrees), in batches whose
statistics are updated between them:
* latent frame 0: the counts' binary digits, most significant first (D = top.bit_length()
  digits), one batch per digit over every block in raster order, the context the digits
  above (a node of the binary tree, TREE table);
* a later latent frame: first, per block, whether its count equals the previous latent
  frame's (one batch; context: whether the block changed in the frame before, SAME table);
  then the counts that changed, their digits as in frame 0.
Each table starts at one count of each bit per context.
"""

from __future__ import annotations

import numpy as np
import constriction

from ..errors import CorruptChunkError, UsageError
from .coder import bytes_to_words, words_to_bytes
from .model import ONE, as_float


def grid(latent_hw: tuple[int, int], block: int) -> tuple[int, int]:
    """Blocks per column and row of a latent frame of H' x W' positions."""
    return -(-latent_hw[0] // block), -(-latent_hw[1] // block)


def expand(counts: np.ndarray, block: int, latent_hw: tuple[int, int]) -> np.ndarray:
    """The per-position limit, uint8 [T', H', W'], of block counts [T', MH, MW]."""
    h, w = latent_hw
    full = np.repeat(np.repeat(counts, block, axis=1), block, axis=2)[:, :h, :w]
    return np.ascontiguousarray(full, dtype=np.uint8)


class _Tables:
    def __init__(self, depth: int):
        self.tree = np.ones((1 << depth, 2), dtype=np.int64)  # node (1, digits above) -> counts
        self.same = np.ones((2, 2), dtype=np.int64)

    @staticmethod
    def numerators(table: np.ndarray, ctx: np.ndarray) -> np.ndarray:
        c = table[ctx]
        total = c[:, 0] + c[:, 1]
        return np.clip((c[:, 1] * ONE + (total >> 1)) // total, 1, ONE - 1)

    @staticmethod
    def learn(table: np.ndarray, ctx: np.ndarray, bits: np.ndarray) -> None:
        np.add.at(table, (ctx, bits.astype(np.int64)), 1)


def _code(counts_or_shape, top: int, coder) -> np.ndarray:
    """The shared walk of encode_map and decode_map: `coder(n, bits_or_None)` codes a batch of
    numerators (the encoder's bits given) and returns the batch's bits."""
    encoding = isinstance(counts_or_shape, np.ndarray)
    shape = counts_or_shape.shape if encoding else counts_or_shape
    depth = max(1, int(top).bit_length())
    tables = _Tables(depth)
    out = np.zeros(shape, dtype=np.int64)
    changed = np.zeros(shape[1:], dtype=np.int64)  # did the block change in the frame before
    for t in range(shape[0]):
        source = counts_or_shape[t].reshape(-1).astype(np.int64) if encoding else None
        if t:
            ctx = changed.reshape(-1)
            same_bits = (source == out[t - 1].reshape(-1)) if encoding else None
            n = tables.numerators(tables.same, ctx)
            same = coder(n, same_bits).astype(bool)
            tables.learn(tables.same, ctx, same)
            todo = np.flatnonzero(~same)
        else:
            same = np.zeros(out[0].size, dtype=bool)
            todo = np.arange(out[0].size)
        node = np.ones(todo.size, dtype=np.int64)
        for d in range(depth - 1, -1, -1):
            digit = ((source[todo] >> d) & 1) if encoding else None
            bits = coder(tables.numerators(tables.tree, node), digit).astype(np.int64) if todo.size else node[:0]
            tables.learn(tables.tree, node, bits)
            node = (node << 1) | bits
        frame = out[t].reshape(-1)
        if t:
            frame[:] = out[t - 1].reshape(-1)
        frame[todo] = node - (1 << depth)
        if t:
            changed = (~same).reshape(shape[1:]).astype(np.int64)
    if not encoding and out.size and out.max() > top:
        raise CorruptChunkError(f"plane map holds a count above the {top} planes coded")
    return out


def encode_map(counts: np.ndarray, top: int) -> bytes:
    """Block counts uint8 [T', MH, MW], each in 0..top -> bytes."""
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.dtype != np.uint8 or min(counts.shape) < 1:
        raise UsageError(f"a plane map's counts must be uint8 [T', MH, MW], got {counts.dtype} {counts.shape}")
    if not 0 <= top <= 255 or counts.max() > top:
        raise UsageError(f"a plane map's counts must be in 0..{top}")
    enc = constriction.stream.queue.RangeEncoder()
    family = constriction.stream.model.Bernoulli(perfect=False)

    def coder(n, bits):
        if n.size:
            enc.encode(bits.astype(np.int32), family, as_float(n))
        return bits

    _code(counts, top, coder)
    return words_to_bytes(enc.get_compressed())


def decode_map(data: bytes, shape: tuple[int, int, int], top: int) -> np.ndarray:
    """Bytes -> block counts uint8 [T', MH, MW]; CorruptChunkError when they do not decode."""
    dec = constriction.stream.queue.RangeDecoder(bytes_to_words(data))
    family = constriction.stream.model.Bernoulli(perfect=False)

    def coder(n, _bits):
        if not n.size:
            return n
        try:
            return np.asarray(dec.decode(family, as_float(n)), dtype=np.int64)
        except Exception as e:  # constriction reports malformed data as a plain exception
            raise CorruptChunkError(f"plane map does not decode: {e}") from e

    return _code(tuple(int(v) for v in shape), top, coder).astype(np.uint8)
