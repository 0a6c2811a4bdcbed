"""Rate control: how many bit-planes each chunk keeps.

The bit-planes of a chunk are entropy coded one segment per plane, and a prefix of planes
decodes on its own, so rate control is a choice made after coding: keep the first k
segments. A fixed k comes from `--planes`/`--quality`; a target bpp keeps, chunk by chunk,
the largest prefix that fits the budget, carrying what a chunk did not spend to the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError

QUALITY_LEVELS = 8


def planes_for_quality(quality: int, bits: int) -> int:
    """Quality 1..8 (like CompressAI's zoo) maps evenly onto 1..K planes; 8 keeps all."""
    if not 1 <= quality <= QUALITY_LEVELS:
        raise UsageError(f"quality must be an integer from 1 to {QUALITY_LEVELS}, got {quality}")
    return max(1, round(bits * quality / QUALITY_LEVELS))


@dataclass
class RateController:
    """Chooses the number of kept planes per chunk.

    Exactly one of `planes` (fixed) or `bpp` (target bits per pixel, file-level) is set.
    """

    bits: int
    planes: int | None = None
    bpp: float | None = None
    fixed_bytes: int = 0  # what the file costs whatever is kept (header, index, footer, audio)
    # Pixels of the whole video when known: the fixed bytes are then charged pro rata, so a
    # large audio track does not starve the first chunks and flood the last ones.
    total_pixels: int = 0
    _spent: int = 0  # bytes the chunks so far kept (segments and their overhead)
    _pixels: int = 0  # pixels covered so far
    _lowest: int = 0  # bytes the chunks so far would cost with one plane each
    _highest: int = 0  # ... and with every plane

    def __post_init__(self):
        if (self.planes is None) == (self.bpp is None):
            raise UsageError("give exactly one of planes or bpp")
        if self.planes is not None and not 1 <= self.planes <= self.bits:
            raise UsageError(f"planes must be from 1 to {self.bits} for this model, got {self.planes}")
        if self.bpp is not None and not (self.bpp > 0 and math.isfinite(self.bpp)):
            raise UsageError(f"bpp must be a positive number, got {self.bpp}")

    def choose(self, segment_sizes: list[int], pixels: int, overhead=lambda planes: 0, dry_run: bool = False) -> int:
        """Number of planes to keep for a chunk whose plane segments have these sizes
        (`dry_run`: what it would be, the budget left as it was).

        `pixels` = frames x width x height of the chunk; `overhead(planes)` = bytes the chunk
        costs beyond its segments. The budget is cumulative, so a chunk that spends less
        leaves more for the next, and one that overshoots takes it back from the next: each chunk
        keeps the prefix whose cost lands nearest the budget (error diffusion), so the file
        ends within about half a plane of its last chunk of the target. A target never drops
        below one plane."""
        n = len(segment_sizes)
        if self.planes is not None:
            kept = min(self.planes, n)
        else:
            covered = self._pixels + pixels
            share = min(1.0, covered / self.total_pixels) if self.total_pixels else 1.0
            budget = covered * self.bpp / 8 - self.fixed_bytes * share - self._spent
            costs = [sum(segment_sizes[:k]) + overhead(k) for k in range(1, n + 1)]
            kept = 1 + min(range(len(costs)), key=lambda i: abs(costs[i] - budget)) if costs else 0
        if dry_run:
            return kept
        self._spent += overhead(kept) + sum(segment_sizes[:kept])
        self._pixels += pixels
        self._lowest += overhead(min(1, n)) + sum(segment_sizes[:1])
        self._highest += overhead(n) + sum(segment_sizes)
        return kept

    # A target met within this fraction is met; otherwise the encoder says what it got.
    TOLERANCE = 0.10

    def miss(self, file_bytes: int) -> str | None:
        """A sentence when a bpp target was not met within TOLERANCE (None when it was, or with
        a fixed number of planes): the target was below one plane per chunk, above every plane,
        or between steps too coarse for this clip. Rates count the whole file, audio included."""
        if self.bpp is None or not self._pixels:
            return None
        got = file_bytes * 8 / self._pixels
        if abs(got - self.bpp) <= self.TOLERANCE * self.bpp:
            return None
        low = (self.fixed_bytes + self._lowest) * 8 / self._pixels
        high = (self.fixed_bytes + self._highest) * 8 / self._pixels
        if self.bpp < low:
            why = f"the lowest reachable rate for this input is about {low:.4g} bpp (one bit-plane per chunk"
            why += f"; {self.fixed_bytes * 8 / self._pixels:.4g} bpp of it headers and audio)" if self.fixed_bytes else ")"
        elif self.bpp > high:
            why = f"the highest reachable rate for this input is about {high:.4g} bpp (every bit-plane)"
        else:
            why = "the clip has too few chunks for finer steps between bit-planes"
        return f"target {self.bpp:.4g} bpp not reached: got {got:.4g} bpp ({(got / self.bpp - 1) * 100:+.0f} %); {why}"
