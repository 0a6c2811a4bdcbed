"""BitplaneCoder: LFQ bit-planes <-> one range-coded segment per plane, chunk after chunk."""

from __future__ import annotations

from typing import Callable

import numpy as np
import constriction

from vtoken.errors import CorruptChunkError, UsageError

from .crossplane import CrossPlanePredictor
from .model import AdaptiveCounts, as_float, ideal_bits
from .walk import walk

# Bump when the coded bytes change for the same input (contexts, counts, order, byte layout).
# 1: the contexts of contexts.py. 2: the same times a cross-plane bucket (crossplane.py), for
# a model that carries a predictor; a model without one still codes format 1, byte for byte.
# 3: format 2 with plane maps (plane_map.py): chunks may send each plane only in some blocks.
FORMAT_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)


def format_version(predictor: CrossPlanePredictor | None, plane_maps: bool = False) -> int:
    """The entropy format a model with this predictor (or none) codes, with plane maps or not
    (maps need the predictor's format: 3 extends 2)."""
    if plane_maps:
        if predictor is None:
            raise UsageError("plane maps need a model with a cross-plane predictor (entropy format 2)")
        return 3
    return 1 if predictor is None else 2


def decodable_versions(predictor: CrossPlanePredictor | None) -> tuple[int, ...]:
    """The entropy formats a model with this predictor (or none) decodes: the one it codes,
    and with a predictor also its plane-mapped extension."""
    return (1,) if predictor is None else (2, 3)


def coder_for(model) -> "BitplaneCoder":
    """A fresh coder for a loaded model: its planes, entropy prior and cross-plane predictor."""
    return BitplaneCoder(model.config.bits, model.entropy_prior, getattr(model, "entropy_predictor", None))


def words_to_bytes(words: np.ndarray) -> bytes:
    # Trailing zero bytes carry nothing: the decoder pads them back (missing words read as 0).
    return words.astype("<u4").tobytes().rstrip(b"\0")


def bytes_to_words(data: bytes) -> np.ndarray:
    pad = (-len(data)) % 4
    return np.frombuffer(bytes(data) + b"\0" * pad, dtype="<u4").astype(np.uint32)


def check_bits(bits: np.ndarray, max_planes: int) -> np.ndarray:
    bits = np.asarray(bits)
    if bits.ndim != 4 or bits.dtype != np.uint8:
        raise UsageError(f"bits must be uint8 [K, T, H, W], got {bits.dtype} {bits.shape}")
    if bits.shape[0] > max_planes:
        raise UsageError(f"bits have {bits.shape[0]} planes but the coder was built for {max_planes}")
    if min(bits.shape[1:]) < 1:
        raise UsageError(f"bits must have at least one frame, row and column, got {bits.shape}")
    if bits.size and bits.max() > 1:
        raise UsageError("bits must be 0 or 1")
    return np.array(bits, dtype=np.uint8, order="C", copy=True)


def check_limit(limit: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """A plane map as the walk takes it (uint8 [T, H, W], C-contiguous), or None."""
    if limit is None:
        return None
    limit = np.asarray(limit)
    if limit.shape != tuple(shape) or limit.dtype != np.uint8:
        raise UsageError(f"a plane map must be uint8 {tuple(shape)}, got {limit.dtype} {limit.shape}")
    return np.ascontiguousarray(limit)


def _same_limit(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


class BitplaneCoder:
    """Context-adaptive binary range coder of LFQ bit-planes.

    The state (adaptive counts, the last two latent frames before the chunk) follows what a
    decoder holds: call `commit(bits, planes)` after `encode` with the number of planes
    written, `reset()` on both sides at key chunks, and `decode` for every chunk in order,
    even one with no stored plane (`decode([], shape)`). A segment may be empty (b"").
    """

    def __init__(self, bits: int, prior: np.ndarray | None = None, predictor: CrossPlanePredictor | None = None):
        if bits < 1:
            raise UsageError(f"bits must be >= 1, got {bits}")
        if predictor is not None and predictor.planes != bits:
            raise UsageError(f"the cross-plane predictor is for {predictor.planes} planes, the coder for {bits}")
        self.bits = bits
        self.predictor = predictor
        self._start = AdaptiveCounts(bits, prior)  # validates the prior once
        # constriction objects are per coder, never module-wide: a coder is one stream, and
        # streams run in several threads at once.
        self._family = constriction.stream.model.Bernoulli(perfect=False)
        self.reset()

    def reset(self) -> None:
        """Forget the previous chunk and the adaptation (key chunk)."""
        self._counts = self._start.copy()
        # (frame -2 [P2, H, W] or None, frame -1 [P, H, W]): the last latent frames decoded
        self._tail: tuple[np.ndarray | None, np.ndarray] | None = None
        # (bits, per plane (final own counts, pooled counts), final counts) of the last encode
        self._cache: tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], AdaptiveCounts] | None = None

    def _prev_for(self, shape: tuple[int, ...]) -> tuple[np.ndarray | None, np.ndarray] | None:
        # A chunk of another size cannot use the previous one as context.
        if self._tail is None or self._tail[1].shape[1:] != tuple(shape[-2:]):
            return None
        return self._tail

    def _advance_tail(self, kept: np.ndarray) -> None:
        """Remember the last two latent frames of `kept` ([P, T, H, W], the planes the decoder
        has), reaching into the previous chunk when this one has a single frame."""
        if kept.shape[0] == 0:
            self._tail = None
            return
        if kept.shape[1] > 1:
            self._tail = (kept[:, -2].copy(), kept[:, -1].copy())
            return
        old = self._prev_for(kept.shape)
        # planes present in both frames only: what a decoder of a truncated stream also has
        before = None if old is None else old[1][: kept.shape[0]]
        self._tail = (before, kept[:, 0].copy())

    def encode(self, bits: np.ndarray, enough: Callable[[list[int]], bool] | None = None,
               limit: np.ndarray | None = None) -> list[bytes]:
        """[K', T, H, W] uint8 -> one segment per plane. The coder's state is not changed.

        `enough(sizes)`, called with the segment sizes so far after each plane, may end the
        coding there (True): a rate control that cannot keep more planes than it has seen
        need not pay for the rest. The segments coded are those it would have had.
        `limit` (uint8 [T, H, W], a plane map) sends plane k only where it is above k (walk.py)."""
        out = check_bits(bits, self.bits)
        limit = check_limit(limit, out.shape[1:])
        given = out.copy() if limit is not None else out  # the walk fills the bits a limit withholds
        counts = self._counts.copy()
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        segments: list[bytes] = []
        snapshots: list[tuple[np.ndarray, np.ndarray]] = []

        def sink(k: int, n: np.ndarray, known: np.ndarray) -> np.ndarray:
            pending.append((known, n))
            return known

        def on_plane(k: int) -> bool:
            enc = constriction.stream.queue.RangeEncoder()
            if pending:
                sym = np.concatenate([s for s, _ in pending]).astype(np.int32)
                p = as_float(np.concatenate([n for _, n in pending]))
                enc.encode(sym, self._family, p)
            segments.append(words_to_bytes(enc.get_compressed()))
            pending.clear()
            snapshots.append((counts.own[k].copy(), counts.last_pooled))
            return enough is not None and enough([len(x) for x in segments])

        walk(counts, self._prev_for(out.shape), out, out.shape[0], sink, on_plane, self.predictor, known=True,
             limit=limit)
        self._cache = (given, limit, out, snapshots, counts)
        return segments

    def commit(self, bits: np.ndarray, planes: int, limit: np.ndarray | None = None) -> None:
        """Advance the state as a decoder that received the first `planes` planes of `bits`
        (coded with `limit`, as encode was given it)."""
        bits = check_bits(bits, self.bits)
        limit = check_limit(limit, bits.shape[1:])
        if not 0 <= planes <= bits.shape[0]:
            raise UsageError(f"planes must be in 0..{bits.shape[0]}, got {planes}")
        cache, self._cache = self._cache, None
        if planes == 0:
            self._tail = None
            return
        if (cache is not None and cache[0].shape == bits.shape and np.array_equal(cache[0], bits)
                and _same_limit(cache[1], limit) and planes <= len(cache[3])):
            _, _, walked, snapshots, final = cache
            self._counts = final if planes == len(snapshots) else self._counts.replayed(snapshots[:planes])
        else:
            walked = bits
            walk(self._counts, self._prev_for(bits.shape), walked, planes, lambda k, n, s: s,
                 predictor=self.predictor, known=True, limit=limit)
        self._advance_tail(walked[:planes])

    def decode(self, segments: list[bytes], shape: tuple[int, int, int], limit: np.ndarray | None = None) -> np.ndarray:
        """Segments of planes 0..len-1 -> uint8 [len(segments), T, H, W]; commits itself.
        With `limit` (a plane map), a bit it withholds holds the coder's prediction (walk.py)."""
        if len(segments) > self.bits:
            raise UsageError(f"{len(segments)} segments but the coder was built for {self.bits} planes")
        t_len, h, w = (int(v) for v in shape)
        if min(t_len, h, w) < 1:
            raise UsageError(f"shape must be positive (T, H, W), got {shape}")
        limit = check_limit(limit, (t_len, h, w))
        self._cache = None
        out = np.zeros((len(segments), t_len, h, w), dtype=np.uint8)
        decoders = [constriction.stream.queue.RangeDecoder(bytes_to_words(s)) for s in segments]

        def sink(k: int, n: np.ndarray, known: np.ndarray) -> np.ndarray:
            try:
                return decoders[k].decode(self._family, as_float(n)).astype(np.uint8)
            except Exception as e:  # constriction reports malformed data as a plain exception
                raise CorruptChunkError(f"entropy-coded plane {k} does not decode: {e}") from e

        prev = self._prev_for(out.shape)
        walk(self._counts, prev, out, len(segments), sink, predictor=self.predictor, limit=limit)
        self._advance_tail(out)
        return out

    def probabilities(self, bits: np.ndarray) -> np.ndarray:
        """The probability of a 1 that the coder gives each bit of `bits` (float64, the shape
        of `bits`) when it codes them next, each in the context of the others; state untouched."""
        out = check_bits(bits, self.bits)
        p1 = np.zeros(out.shape, dtype=np.float64)
        flat = p1.reshape(out.shape[0], out.shape[1], -1)

        def probe(k: int, t: int, positions: np.ndarray, n: np.ndarray) -> None:
            flat[k, t, positions] = as_float(n)

        walk(self._counts.copy(), self._prev_for(out.shape), out, out.shape[0], lambda k, n, s: s,
             predictor=self.predictor, known=True, probe=probe)
        return p1

    def estimate(self, bits: np.ndarray) -> np.ndarray:
        """Ideal code length in bits of each plane of `bits` (float64 [K']); state untouched."""
        out = check_bits(bits, self.bits)
        cost = np.zeros(out.shape[0])

        def sink(k: int, n: np.ndarray, known: np.ndarray) -> np.ndarray:
            cost[k] += ideal_bits(n, known)
            return known

        walk(self._counts.copy(), self._prev_for(out.shape), out, out.shape[0], sink, predictor=self.predictor,
             known=True)
        return cost
