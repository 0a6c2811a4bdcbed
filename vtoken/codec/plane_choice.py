"""The encoder's plane maps (entropy format 3): where in the picture a chunk spends its planes.

A uniform cut keeps the same k planes at every latent position, though a flat sky is
finished at 2 planes and a face still gains from 24. With a plane map each block of
BLOCK x BLOCK latent positions keeps its own count from LADDER, chosen to minimise the
chunk's LPIPS at the bytes the rate control gave k planes everywhere: the same rate, spent
where it buys the most (`--plane-map`, an effort setting).

The format allows a count per block per latent frame; this encoder gives a block one count
for the whole chunk. Where a block's count rises from one latent frame to the next, the
coder's temporal context for the planes it gains is the previous frame's predicted (not
sent) bits, a poor guess: per-frame maps cost 5,431 bytes where their estimate was 3,609
(VID_20191220_170832 at the bytes of 4 planes, hold 0.5), one map per chunk 4,248 for 4,079.

Per chunk, for every count c of the ladder within SPAN of the uniform cut's: the bits a
stream keeping c planes sends (the hysteresis, hold.py, depends on c), their code length per
block under the coder's state (what they would cost), and the frames they decode to from the
decoder's causal state, whose LPIPS against the frames shown is pooled to the blocks and
summed over the chunk (what they would buy).
Then a Lagrangian: each block takes the count minimising LPIPS + lambda x bits, lambda the
smallest whose total, the map's own bytes included, fits the budget. A block's count
changes its neighbours' pictures (and contexts a little; the coded bytes are what the rate
control counts), so a second pass measures each block again at every count beside a
checkerboard of neighbours at their first counts, and chooses again (PASSES). Each count is
a decode and an LPIPS pass of the chunk in the first pass, two in the second: 12 to 15 times
the decoder's work.

Measured before this was a stream option (benchmarks/plane_map_probe.py, the default model
on the eval clips at the codec's hold): LPIPS BD-rate -6 / -13 / -22 % against uniform cuts;
no rule without decodes (the most planes whose bits fit a cap) beat uniform cuts.
"""

from __future__ import annotations

import numpy as np

from ..entropy.plane_map import encode_map, expand, grid as map_grid

LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
BLOCK = 5  # latent positions: 40 x 40 pixels with the 8x model
SEGMENT_BYTES = 12  # a plane segment's descriptor in the chunk header (SPEC 4.1)
# A block's count stays within this factor of the uniform cut's: a block's LPIPS is measured
# with its neighbours at its own count, and next to a block of far fewer planes it is worse
# than measured. On VID_20191220_170832 at the bytes of 8 planes, the whole ladder gave LPIPS
# 0.2138 (0.2004 predicted), counts within 2x 0.2087 (0.2013 predicted); uniform 0.2093.
# It also bounds the decodes: 4 to 5 counts a chunk instead of 12. With the second choice
# (PASSES) counts within 3x did worse than within 2x on one key chunk at 2-32 planes: LPIPS
# BD-rate against uniform cuts -17.8 / -9.0 % against -19.7 / -11.8 % on VID_20191220_170832 /
# cockatoo (results/plane_map_passes_cpu.md).
SPAN = 2
# Choices made per chunk: the first measures each block beside neighbours at its own count; a
# second measures it beside a checkerboard of neighbours at their first counts (two decodes per
# candidate) and chooses again. One key chunk, 2-32 planes (benchmarks/plane_map_prefix_probe.py
# --passes 1 / 2, results/plane_map_passes_cpu.md): LPIPS BD-rate against uniform cuts -11.6 /
# -19.7 % on VID_20191220_170832, -6.1 / -11.8 % on cockatoo; at 8 planes one pass was worse
# than uniform on both. The choice takes about 2.5x as long. A third choice gained -2.7 % more
# on VID_20191220_170832, for 25 decodes a chunk instead of 15.
PASSES = 2


def block_sums(per_position: np.ndarray, block: int) -> np.ndarray:
    """[T, H, W] -> [T, ceil(H/B), ceil(W/B)] sums over blocks (edge blocks cut)."""
    t, h, w = per_position.shape
    gh, gw = map_grid((h, w), block)
    padded = np.zeros((t, gh * block, gw * block), dtype=np.float64)
    padded[:, :h, :w] = per_position
    return padded.reshape(t, gh, block, gw, block).sum(axis=(2, 4))


def position_code_lengths(coder, bits: np.ndarray, planes: int) -> np.ndarray:
    """float64 [T', H', W']: bits the coder (its state as it is) spends on each position's
    first `planes` planes of `bits` [K, T', H', W']."""
    kept = np.ascontiguousarray(bits[:planes])
    p1 = np.clip(coder.probabilities(kept), 1e-9, 1 - 1e-9)
    return -np.log2(np.where(kept == 1, p1, 1 - p1)).sum(axis=0)


def mixed_bits(limit: np.ndarray, bits_for) -> np.ndarray:
    """uint8 [K, T', H', W']: at each position the bits of the stream that keeps its count in
    `limit` [T', H', W'], `bits_for(count)` giving that stream's bits (the hysteresis depends
    on the count)."""
    out = None
    for c in np.unique(limit):
        bits = bits_for(int(c))
        out = np.zeros_like(bits) if out is None else out
        where = limit == c
        out[:, where] = bits[:, where]
    return out


def allocate(dist: np.ndarray, rate: np.ndarray, budget: float, iterations: int = 60) -> np.ndarray:
    """Candidate index per block (shape rate.shape[1:]) minimising sum(dist) with sum(rate) <=
    budget (dist, rate: [C, blocks...], candidates in increasing rate): the Lagrangian choice at the
    smallest lambda that fits, by bisection on log lambda; the cheapest candidate everywhere
    when nothing fits."""
    def choice(lam: float) -> np.ndarray:
        return np.argmin(dist + lam * rate, axis=0)

    def cost(c: np.ndarray) -> float:
        return float(np.take_along_axis(rate, c[None], 0).sum())

    best = choice(0.0)
    if cost(best) <= budget:
        return best
    lo, hi = 1e-12, 1.0
    while cost(choice(hi)) > budget and hi < 1e12:
        lo, hi = hi, hi * 16
    if cost(choice(hi)) > budget:
        return np.zeros(rate.shape[1:], dtype=np.int64)
    for _ in range(iterations):
        mid = np.sqrt(lo * hi)
        lo, hi = (lo, mid) if cost(choice(mid)) <= budget else (mid, hi)
    return choice(hi)


class PlaneMapper:
    """Chooses the plane maps of one stream's chunks, in order. One per stream: it keeps the
    decoder's causal state of the chunks chosen so far (a chunk's frames depend on it)."""

    def __init__(self, model, device, precision: str = "fp32", ladder=LADDER, block: int = BLOCK, passes: int = PASSES,
                 span: float = SPAN):
        from ..models.stream import StreamState
        from . import slices

        self.model, self.device, self.precision, self.block = model, device, precision, int(block)
        self.passes = int(passes)  # choices; each after the first measures blocks beside their neighbours' counts
        self.span = float(span)  # a block's count within this factor of the uniform cut's
        self.ladder = [c for c in ladder if c <= model.config.bits]
        self.per_call = slices.latents_per_call(device)
        self._state = StreamState()
        self._pending: tuple[np.ndarray, np.ndarray, bool] | None = None  # sent, not yet through the state
        self.estimate = 0.0  # bytes of the last map chosen, as choose estimated them

    def _decode(self, bits: np.ndarray, limit: np.ndarray | None, key: bool, state, height: int, width: int,
                repeat: int) -> np.ndarray:
        import torch

        from . import slices
        from .precision import autocast

        x = torch.from_numpy(np.ascontiguousarray(bits))[None].to(self.device)
        lim = None if limit is None else torch.from_numpy(limit)[None]
        with torch.inference_mode(), autocast(self.device, self.precision):
            return slices.decode(self.model, x, len(bits), state, key, repeat, height, width, self.per_call, lim)

    def choose(self, seen: np.ndarray, z: np.ndarray, key: bool, planes: int, held, coder, repeat: int = 1,
               growth: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bits uint8 [K, T', H', W'], limit uint8 [T', H', W'], block counts uint8
        [T', GH, GW]) for a chunk whose coded frames are `seen` (uint8 [n, H, W, 3]; on a
        finer grid than the model's, `repeat` > 1, the model saw each that many times) and
        gave latents z, at the bytes of `planes` planes everywhere under `coder`'s state,
        `held` the stream's hysteresis (neither is changed); divided by `growth` where a later
        stage (the encoder's search) will make the chosen bits cost that many times more.
        `estimate` is then the chosen map's bytes as estimated here."""
        from ..metrics.lpips import ReferenceLPIPS
        from ..models.stream import StreamState

        if key:
            self._state, self._pending = StreamState(), None
        elif self._pending is not None:
            sent, limit, was_key = self._pending
            self._decode(sent, limit, was_key, self._state, *seen.shape[1:3], repeat)
            self._pending = None
        n, height, width = seen.shape[:3]
        _, t_len, h, w = z.shape
        gh, gw = map_grid((h, w), self.block)
        lpips = ReferenceLPIPS(seen, self.device)
        cands = sorted({c for c in self.ladder if planes <= self.span * c and c <= self.span * planes} | {planes})
        bits, rate, dist = {}, [], []
        for c in cands:
            bits[c] = held.bits(z, key, c, commit=False)
            rate.append(block_sums(position_code_lengths(coder, bits[c], c), self.block))
            frames = self._decode(bits[c][:c], None, key, self._state.copy(), height, width, repeat)
            dist.append(lpips.blocks(frames[:n], (gh, gw)).sum(axis=0))  # [GH, GW], over the chunk's frames
        # One count per block for the whole chunk (see the module docstring).
        rate, dist = np.stack(rate).sum(axis=1), np.stack(dist)  # [C, GH, GW]
        budget = float(rate[cands.index(planes)].sum()) / growth
        choice = allocate(dist, rate, budget)
        # The map and the segments past `planes` (their descriptors) are paid from the same budget.
        extra = len(encode_map(np.broadcast_to(np.array(cands, np.uint8)[choice], (t_len, gh, gw)).copy(),
                               self.model.config.bits))
        extra += SEGMENT_BYTES * max(0, cands[int(choice.max())] - planes)
        chosen = allocate(dist, rate, budget - 8 * extra)
        for _ in range(self.passes - 1):
            dist = self._beside_neighbours(lpips, bits, cands, chosen, key, seen.shape, z.shape, repeat)
            chosen = allocate(dist, rate, budget - 8 * extra)
        self.estimate = float(np.take_along_axis(rate, chosen[None], 0).sum()) / 8 + extra
        choice = np.broadcast_to(chosen, (t_len, gh, gw))
        counts = np.array(cands, dtype=np.uint8)[choice]
        limit = expand(counts, self.block, (h, w))
        return mixed_bits(limit, bits.__getitem__), limit, counts

    def _beside_neighbours(self, lpips, bits: dict, cands: list, chosen: np.ndarray, key: bool, seen_shape,
                           z_shape, repeat: int) -> np.ndarray:
        """float64 [C, GH, GW]: each block's LPIPS over the chunk at each candidate count with
        the blocks of the other colour of a checkerboard at their `chosen` counts (a block
        measured alone, beside neighbours at its own count, misjudges what it buys)."""
        n, height, width = seen_shape[:3]
        _, t_len, h, w = z_shape
        gh, gw = chosen.shape
        colour = np.add.outer(np.arange(gh), np.arange(gw)) % 2
        now = np.array(cands)[chosen]
        dist = np.zeros((len(cands), gh, gw))
        for i, c in enumerate(cands):
            for side in (0, 1):
                counts = np.where(colour == side, c, now).astype(np.uint8)
                limit = expand(np.broadcast_to(counts, (t_len, gh, gw)).copy(), self.block, (h, w))
                top = int(counts.max())
                frames = self._decode(mixed_bits(limit, bits.__getitem__)[:top], limit, key, self._state.copy(),
                                      height, width, repeat)
                dist[i][colour == side] = lpips.blocks(frames[:n], (gh, gw)).sum(axis=0)[colour == side]
        return dist

    def sent(self, bits: np.ndarray, limit: np.ndarray, key: bool) -> None:
        """The chunk just chosen went out with these planes (bits [kept, T', H', W']): the
        next chunk's decodes continue from it (decoded then, when there is a next chunk)."""
        self._pending = (np.ascontiguousarray(bits), limit, key)
