"""Rate control: how many bit-planes each chunk keeps.

The bit-planes of a chunk are entropy coded one segment per plane, and a prefix of planes
decodes on its own, so rate control is a choice made after coding: keep the first k
segments. A fixed k comes from `--planes`/`--quality`; a target bpp keeps, chunk by chunk,
the prefix whose cost lands nearest the budget, carrying what a chunk did not spend to the
next.

A key chunk costs more per pixel than the chunks after it at the same planes (its first latent
frame has nothing to be predicted from): 2.3x at factor 16, 1.3x at the model's grid. Held
to its pixels' share of the budget it kept fewer planes than they did, and its frames were the
worst of the stream (on the eval clips at 0.002-0.008 bpp, 0.01-0.045 LPIPS worse than the
same planes in every chunk at the same rate). So a key chunk is budgeted for its group (it and
the chunks up to the next key chunk): it keeps the planes at which the whole group is
projected to cost the group's budget, and the chunks after it share what is left by their
pixels, so every chunk of a group keeps about as many planes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate

from ..errors import UsageError

QUALITY_LEVELS = 8

# A key chunk's first latent frame costs about this many predicted latent frames. Measured on
# the eval clips at 2-64 planes, a 16-frame continuing chunk cost 0.37-0.49 of its 17-frame
# key chunk at factor 16 (2 latent frames to 1) and 0.67-0.76 at the model's grid (5 to 4);
# 1.5 gives 0.40 and 0.73. Used only until a stream's first continuing chunk measures it.
KEY_FRAME_COST = 1.5


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
    _highest: int = 0  # ... and with every plane coded
    _every_plane_seen: bool = True  # every chunk so far coded all its planes (`enough` stops early)
    # Groups (a key chunk and the chunks after it), set by the codec; 0 / 1 budget chunk by chunk.
    key_interval: int = 1  # chunks per group
    inter_pixels: int = 0  # pixels of a full chunk after a key chunk (groups need total_pixels too)
    _group_end: int = 0  # pixels covered when the current group ends (projected)
    _key_costs: list | None = None  # the current group's key chunk: bytes at 1..n planes
    _ratio: list | None = None  # a continuing chunk's bytes / its key chunk's, per plane count (measured)
    # The first group's chunks' own bytes per pixel as its key chunk projected them (with a fixed
    # number of planes too), when the group holds more than the key chunk.
    first_projection: float | None = None

    def __post_init__(self):
        if (self.planes is None) == (self.bpp is None):
            raise UsageError("give exactly one of planes or bpp")
        if self.planes is not None and not 1 <= self.planes <= self.bits:
            raise UsageError(f"planes must be from 1 to {self.bits} for this model, got {self.planes}")
        if self.bpp is not None and not (self.bpp > 0 and math.isfinite(self.bpp)):
            raise UsageError(f"bpp must be a positive number, got {self.bpp}")

    def choose(self, segment_sizes: list[int], pixels: int, overhead=lambda planes: 0, dry_run: bool = False,
               key: bool | None = None, latent_frames: int = 0) -> int:
        """Number of planes to keep for a chunk whose plane segments have these sizes
        (`dry_run`: what it would be, the budget left as it was).

        `pixels` = frames x width x height of the chunk; `overhead(planes)` = bytes the chunk
        costs beyond its segments; `key` and `latent_frames` (its latent frames): whether it
        starts a group (None: every chunk budgeted alone). The budget is cumulative, so a chunk
        that spends less leaves more for the next, and one that overshoots takes it back from
        the next: each chunk keeps the prefix whose cost lands nearest its budget (error
        diffusion), so the file ends within about half a plane of its last chunk of the target.
        A target never drops below one plane. The sizes may stop short of every plane (see
        `enough`): the choice is among those given."""
        n = len(segment_sizes)
        costs = _costs(segment_sizes, overhead)
        grouped = self._grouped(key, costs)
        if self.planes is not None:
            kept = min(self.planes, n)
            if key and grouped:  # the projection is still recorded (first_projection)
                values, end = self._projection(costs, pixels, latent_frames)
        elif not costs:
            kept = 0
        else:
            values, budget, end = self._target(costs, pixels, key, grouped, latent_frames)
            kept = _nearest(values, budget)
            if not (dry_run or key) and grouped and self._key_costs and pixels == self.inter_pixels:
                # The group's first full continuing chunk: what it costs against its key chunk.
                self._ratio = [c / k for c, k in zip(costs, self._key_costs)]
                self._key_costs = None
        if dry_run:
            return kept
        if key and grouped:
            self._group_end, self._key_costs = end, costs
            if self.first_projection is None and end > self._pixels + pixels:
                self.first_projection = values[kept - 1] * 8 / (end - self._pixels)
        cost = [overhead(0)] + costs  # what keeping 0..n planes costs
        self._spent += cost[kept]
        self._pixels += pixels
        self._lowest += cost[min(1, n)]
        self._highest += cost[n]
        self._every_plane_seen &= n == self.bits
        return kept

    def enough(self, segment_sizes: list[int], pixels: int, overhead=lambda planes: 0, key: bool | None = None,
               latent_frames: int = 0) -> bool:
        """Whether coding more planes of this chunk could change `choose`: not once the fixed
        planes are in hand, nor once a prefix costs more than the budget (a chunk's cost only
        grows with its planes, so a longer prefix lands further from it). The encoder stops
        coding there: at 12 of 64 planes that is about a fifth of the entropy coder's work."""
        if self.planes is not None:
            return len(segment_sizes) >= self.planes
        costs = _costs(segment_sizes, overhead)
        if not costs:
            return False
        values, budget = self._held_to(costs, pixels, key, latent_frames)
        return values[-1] > budget

    def room(self, segment_sizes: list[int], planes: int, pixels: int, overhead=lambda planes: 0,
             key: bool | None = None, latent_frames: int = 0) -> float:
        """How many times what this chunk's first `planes` segments count for the budget gives
        it (1 with a fixed number of planes): where a later stage changes the chunk's bytes,
        what it may spend without the prefix choice (`choose`)."""
        if self.planes is not None:
            return 1.0
        values, budget = self._held_to(_costs(segment_sizes, overhead), pixels, key, latent_frames)
        return max(budget, 0.0) / max(values[planes - 1], 1.0)

    def _held_to(self, costs: list[int], pixels: int, key: bool | None,
                 latent_frames: int) -> tuple[list[float], float]:
        """(what each prefix counts for, the budget it is held to), the budget left as it was."""
        values, budget, _ = self._target(costs, pixels, key, self._grouped(key, costs), latent_frames)
        return values, budget

    def _grouped(self, key: bool | None, costs: list[int]) -> bool:
        return bool(key is not None and self.key_interval > 1 and self.inter_pixels and self.total_pixels and costs)

    def _target(self, costs: list[int], pixels: int, key: bool | None, grouped: bool,
                latent_frames: int) -> tuple[list[float], float, int]:
        """(what each prefix counts for, the budget it is held to, the pixels covered at the end
        of the group or 0): a key chunk of a group counts for its group's projected bytes."""
        if not grouped:
            # Chunk by chunk: no groups, or a video of unknown length (its last group may be short).
            return costs, self._budget(self._pixels + pixels), 0
        if key:
            projected, end = self._projection(costs, pixels, latent_frames)
            return projected, self._budget(end), end
        end = max(self._group_end, self._pixels + pixels)  # past a projected group: this chunk alone
        return costs, self._budget(end) * pixels / (end - self._pixels), end

    def _budget(self, covered: int) -> float:
        """Bytes the chunks from here to `covered` pixels may cost: the target over everything
        up to there, less the fixed bytes' share of it and what the chunks so far spent."""
        share = min(1.0, covered / self.total_pixels) if self.total_pixels else 1.0
        return covered * self.bpp / 8 - self.fixed_bytes * share - self._spent

    def _projection(self, costs: list[int], pixels: int, latent_frames: int) -> tuple[list[float], int]:
        """A key chunk's group (it and up to key_interval - 1 continuing chunks, fewer where the
        video ends): its bytes projected at 1..n planes, and the pixels covered at its end. A
        key chunk keeps the planes at which that lands nearest the group's budget."""
        rest = max(0, min((self.key_interval - 1) * self.inter_pixels, self.total_pixels - self._pixels - pixels))
        ratio = self._ratio
        if not ratio:
            # Until measured: a continuing chunk has one latent frame fewer, none of them a key frame.
            later = max(latent_frames - 1, 0)
            ratio = [later / (KEY_FRAME_COST + later)]
        # Measured up to the planes both chunks coded (`enough`); beyond them, as the last one.
        ratio = ratio[: len(costs)] + ratio[-1:] * (len(costs) - len(ratio))
        follow = rest / self.inter_pixels  # continuing chunks in the group
        return [c * (1 + follow * r) for c, r in zip(costs, ratio)], self._pixels + pixels + rest

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
        elif self.bpp > high and self._every_plane_seen:
            why = f"the highest reachable rate for this input is about {high:.4g} bpp (every bit-plane)"
        else:
            why = "the clip has too few chunks for finer steps between bit-planes"
        return f"target {self.bpp:.4g} bpp not reached: got {got:.4g} bpp ({(got / self.bpp - 1) * 100:+.0f} %); {why}"


def _costs(segment_sizes: list[int], overhead) -> list[int]:
    """What keeping 1..n planes costs: their segments and the chunk's overhead."""
    return [size + overhead(k) for k, size in enumerate(accumulate(segment_sizes), 1)]


def _nearest(costs: list[float], budget: float) -> int:
    """1 + the index of the cost nearest the budget (the planes to keep)."""
    return 1 + min(range(len(costs)), key=lambda i: abs(costs[i] - budget))
