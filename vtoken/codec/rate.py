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
    fixed_bytes: int = 0  # what the stream costs whatever is kept (header, index, footer)
    _spent: int = 0  # bytes the chunks so far kept (segments and their overhead)
    _pixels: int = 0  # pixels covered so far

    def __post_init__(self):
        if (self.planes is None) == (self.bpp is None):
            raise UsageError("give exactly one of planes or bpp")
        if self.planes is not None and not 1 <= self.planes <= self.bits:
            raise UsageError(f"planes must be from 1 to {self.bits} for this model, got {self.planes}")
        if self.bpp is not None and not (self.bpp > 0 and math.isfinite(self.bpp)):
            raise UsageError(f"bpp must be a positive number, got {self.bpp}")

    def choose(self, segment_sizes: list[int], pixels: int, overhead=lambda planes: 0) -> int:
        """Number of planes to keep for a chunk whose plane segments have these sizes.

        `pixels` = frames x width x height of the chunk; `overhead(planes)` = bytes the chunk
        costs beyond its segments. The budget is cumulative, so a chunk that spends less
        leaves more for the next. A target never drops below one plane."""
        if self.planes is not None:
            kept = min(self.planes, len(segment_sizes))
        else:
            budget = (self._pixels + pixels) * self.bpp / 8 - self.fixed_bytes - self._spent
            kept = 1
            while kept < len(segment_sizes) and sum(segment_sizes[: kept + 1]) + overhead(kept + 1) <= budget:
                kept += 1
        self._spent += overhead(kept) + sum(segment_sizes[:kept])
        self._pixels += pixels
        return kept
