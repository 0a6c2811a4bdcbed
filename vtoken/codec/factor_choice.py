"""`temporal_factor="auto"`: the stream's time grid chosen by trial, at the rate asked for.

A finer grid than the model's (frames.frame_repeat) gives every frame more latent frames. On
moving content that buys more quality per bit than more planes do; on other clips the model's
own grid with more planes is better at the same rate, and a finer grid with fewer planes
gives a larger and worse file. A coarser grid (coarse.py) codes every 2nd-8th frame with more
planes and blends the rest: at low rates on slow motion that wins, on fast motion it ghosts.
Which one wins depends on the clip and the rate, so it is measured: the first chunk is coded
at the bpp target on each grid the chunk length allows, decoded, and scored with LPIPS
against the source (coarsest first; once a grid's one plane is over the target, the finer
ones, whose plane costs more, are not tried). The grid kept is the one with the lowest LPIPS
among the trials that stay within the target (RateController.TOLERANCE); when none does, the
coarsest (the fewest bits). At one rate the grids' scores fall and then rise, from too few
coded frames to too few planes, so the trials stop at the first grid that scores worse than
the best so far: the finest grids, which cost 2-4 model passes per frame, are tried only when
the rate calls for them. Of the 111 auto decisions recorded in benchmarks/results (eval clips,
0.002-0.1 bpp, 17- and 33-frame chunks) this rule would have changed none, and skipped 233 of
their 614 trials. Planes come in steps, so a trial may land well under the target
or over it (at 0.002 bpp one plane more or less is a third of the rate): its LPIPS is then
read at the target, between its planes and the next plane count towards the target (coded
and scored too), linear in log rate, so that grids are compared at the same rate. One header
holds one grid, so the choice is the whole stream's; the first chunk is a key chunk, so it
stands for the rest only as well as the clip's start stands for the clip.

At the top of the range the grid kept may keep every plane and still fall short of the target
(with a searched stream, which tries no grid finer than the model's, on VID_20191220_170832 at
0.1 bpp: 0.075). The rest of the rate then goes to key chunks: each starts with a latent frame
of its own, so shorter key chunks (every chunk a key chunk, halved while the grid allows) code
more and decode better; each spacing is a trial like the grids', kept when it scores better
(_denser_keys). The stream's header carries the spacing chosen.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

from .. import defaults
from ..bitstream import stream_overhead
from ..errors import UsageError
from .frames import stream_factors
from .precision import resolve_precision
from .rate import RateController

AUTO = "auto"
NEEDS_BPP = ("temporal factor auto needs a bpp (or bitrate) target: it picks the time grid with the best quality at "
             "that rate")


@dataclass
class FactorTrial:
    """The first chunk coded on one grid (or one grid in shorter key chunks) at the target: its
    rate and its LPIPS."""

    factor: int
    bpp: float
    lpips: float
    planes: int
    at_target: float | None = None  # LPIPS read at the target, between these planes and the next towards it
    chunk_frames: int | None = None  # a shorter key spacing than the stream's (key_spacings); None: the stream's
    key_interval: int | None = None

    def fits(self, target: float) -> bool:
        return self.at_target is not None or self.bpp <= target * (1 + RateController.TOLERANCE)

    @property
    def score(self) -> float:
        return self.lpips if self.at_target is None else self.at_target


def candidate_factors(model_factor: int, chunk_frames: int) -> list[int]:
    """The grids a stream of this model may use with chunks of `chunk_frames` frames, coarsest
    first."""
    return [f for f in stream_factors(model_factor) if (chunk_frames - 1) % f == 0]


def searched_finest(model_factor: int, refine: int) -> int:
    """The finest grid auto tries for a stream coded with `refine` search steps. The trials are
    unsearched (a search on every grid would multiply their cost), and the search gains less on
    the grids finer than the model's, where the model sees every frame 2-4 times. Searched (8
    steps, eval clips): VID_20191220_170832 at 0.064 bpp scored LPIPS 0.071 on the model's grid 4
    against 0.087 on grid 2, the unsearched trials' choice, and at 0.1 0.068 (grid 4, all planes:
    0.075 bpp) against 0.093 (grid 1); cockatoo 0.194 against 0.200 at 0.032 and 0.150 against
    0.151 at 0.064 (benchmarks/results/auto_refine8_finest4_cpu.md). So a searched stream keeps to
    the model's grid or coarser ones; an unsearched one tries every grid."""
    return model_factor if refine else 1


def choose(trials: list[FactorTrial], target: float) -> int:
    """The factor of the best trial within the target; the coarsest trial's when none fits."""
    return chosen(trials, target).factor


def chosen(trials: list[FactorTrial], target: float) -> FactorTrial:
    """The best trial within the target (the longer key spacing on a tie); the coarsest trial
    when none fits."""
    fitting = [t for t in trials if t.fits(target)]
    if not fitting:
        return max(trials, key=lambda t: t.factor)
    return min(fitting, key=lambda t: (t.score, -t.factor, -(t.chunk_frames or math.inf)))


MIN_KEY_CHUNK = 5  # frames: a key latent frame and one step of the model's grid


def key_spacings(chunk_frames: int, factor: int) -> list[int]:
    """Shorter key chunks for grid `factor`, longest first: the chunk halved while it stays
    1 + a multiple of the factor and at least MIN_KEY_CHUNK frames (33 frames on grid 4: 17,
    9, 5; on grid 8: 17, 9)."""
    out, inter = [], chunk_frames - 1
    while (inter % 2 == 0 and (inter // 2) % factor == 0 and inter // 2 >= factor
           and 1 + inter // 2 >= MIN_KEY_CHUNK):
        inter //= 2
        out.append(1 + inter)
    return out


# What each step of the encoder's search (refine.py) adds to a stream's bytes at all 64 planes on
# the model's grid, the least of the eval clips: 1 / 2 / 4 / 8 steps +4.0 / +5.9 / +11.0 / +21.5 %
# (cockatoo; cityCC0 +4.8 / +6.8 / +11.7 / +22.3 %, VID_20191220_170832 +9.4 / +12.5 / +20.0 /
# +36.7 %; `vtoken encode REF -b 64 --refine N` on the bench's references). The trials are
# unsearched, so a searched stream reaches this much further than they show. Not measured past
# 8 steps: held there. Measured with the default loss; `--refine-loss l1` adds a little less at 8
# steps (+19.3 / +22.0 / +25.5 %, benchmarks/results/refine_loss_l1_cpu.csv), so auto may count
# such a stream's reach slightly long near the top rate.
SEARCH_GROWTH_PER_STEP = 0.027
SEARCH_GROWTH_STEPS = 8
# The flip steps the default search starts with (refine.search_split): 1 / 2 of them (3 % of the
# kept bits, then 2 % a step) add +8.2 / +11.8 % at 64 planes, the least of the eval clips
# (cockatoo +9.6 / +13.9 %, VID_20191220_170832 +20.9 / +30.0 %; `python
# benchmarks/refine_steps.py code ... --steps 1|2 --method flip`, benchmarks/results/refine_flip_cpu.md);
# the Adam steps after them add about what Adam's steps alone would (cockatoo, 2 flip + 6 Adam
# steps: +20.8 %, 8 Adam steps +21.5 %), so a search's growth is the larger of the two.
SEARCH_GROWTH_FLIPS = {0: 0.0, 1: 0.082, 2: 0.118}


def searched_reach(steps: int) -> float:
    """How much further than its unsearched trial a stream searched for `steps` steps (by the
    method defaults hold, refine.search_split) reaches."""
    from .refine import search_split

    steps = max(int(steps), 0)
    flips = min(search_split(steps)[0], max(SEARCH_GROWTH_FLIPS))
    return 1.0 + max(SEARCH_GROWTH_FLIPS[flips], SEARCH_GROWTH_PER_STEP * min(steps, SEARCH_GROWTH_STEPS))


def under_reach(trial: FactorTrial, target: float, bits: int, reach: float = 1.0) -> bool:
    """Whether a trial keeps every plane and still stays under the target by more than the
    tolerance, its rate taken `reach` times (searched_reach for a searched stream): its grid
    cannot spend the rate asked for."""
    return trial.planes >= bits and trial.bpp * reach < target * (1 - RateController.TOLERANCE)


def past_best(trials: list[FactorTrial], target: float) -> bool:
    """Whether the last trial (the finest so far) fits the target and scores worse than the
    best one before it that does: the trials stop there."""
    *before, last = trials
    scores = [t.score for t in before if t.fits(target)]
    return last.fits(target) and bool(scores) and last.score > min(scores)


def read_at_target(target: float, near: tuple[float, float], other: tuple[float, float]) -> float | None:
    """LPIPS at `target` bpp between two (bpp, LPIPS) points of one grid, linear in log rate
    (clamped to the two points); None when neither point is within the target."""
    (r0, l0), (r1, l1) = near, other
    if min(r0, r1) > target * (1 + RateController.TOLERANCE) or r0 == r1:
        return None
    t = min(1.0, max(0.0, (math.log(target) - math.log(r0)) / (math.log(r1) - math.log(r0))))
    return l0 + t * (l1 - l0)


def run_trials(codec, frames: list[np.ndarray], info, bpp: float, *, chunk_frames: int, precision: str,
               source: str | None = None, lpips_device: str = "cpu", hold: float = defaults.HOLD,
               key_interval: int = defaults.KEY_INTERVAL, total_frames: int | None = None,
               finest: int = 1, refine: int = 0) -> tuple[list[FactorTrial], dict]:
    """Code `frames` (the stream's first chunk) at `bpp` on every candidate grid, coarsest
    first, up to the first whose one plane is over the target or that scores worse than the
    best before it (past_best), in memory, as the stream
    itself would code its first chunk (same header, same rate budget: a key chunk keeps the
    planes at which its group is projected to meet the target, rate.py). A
    trial's bpp is that projection (the group's own bytes per pixel), or the chunk's own
    bytes (its segments and index entry) per pixel where the chunk is the whole group. A
    trial more than RateController.TOLERANCE off the target is coded once more with one plane
    more (under it) or fewer (over it), for its LPIPS at the target (read_at_target).

    Grids finer than `finest` are not tried (a searched stream's: searched_finest). Then shorter
    key chunks where the best grid falls short of the target (_denser_keys; for a stream
    searched for `refine` steps the grid's rate counts searched_reach(refine) times its trial's).

    Also returns each trial's stream at the target ((factor, chunk_frames) as in its FactorTrial:
    (bytes, Compressed)): when the input is this one chunk, the chosen one is the whole stream."""
    if not frames:
        return [], {}
    from ..metrics.lpips import ReferenceLPIPS

    ref = np.stack(frames)
    lpips = ReferenceLPIPS(ref, lpips_device)  # the reference's features once for every trial
    trials, streams = [], {}
    for factor in [f for f in candidate_factors(codec.config.temporal_factor, chunk_frames) if f >= finest]:
        # Unsearched (refine 0) whatever the stream asks: a search on every grid would multiply the cost.
        kw = dict(chunk_frames=chunk_frames, key_interval=key_interval, precision=precision, source=source,
                  temporal_factor=factor, hold=hold, refine=0, total_frames=total_frames)
        try:
            rate, score, planes, stream = _trial_point(codec, ref, info, lpips, bpp=bpp, **kw)
        except UsageError:
            continue  # a grid this input cannot use (a chunk too large for the decoder at this grid)
        trial = FactorTrial(factor, rate, score, planes)
        streams[(factor, None)] = stream
        if abs(rate / bpp - 1) > RateController.TOLERANCE:
            step = planes + 1 if rate < bpp else planes - 1
            if 1 <= step <= codec.config.bits:
                other = _trial_point(codec, ref, info, lpips, planes=step, **kw)
                trial.at_target = read_at_target(bpp, (rate, score), other[:2])
        trials.append(trial)
        if planes == 1 and not trial.fits(bpp):
            break  # one plane is over the target already; a finer grid's plane costs more
        if past_best(trials, bpp):
            break  # the finer grids score worse still (module docstring)
    if trials:
        _denser_keys(codec, ref, info, lpips, bpp, trials, streams, searched_reach(refine),
                     chunk_frames=chunk_frames, precision=precision, source=source, hold=hold,
                     total_frames=total_frames)
    return trials, streams


def _denser_keys(codec, ref: np.ndarray, info, lpips, bpp: float, trials: list[FactorTrial], streams: dict,
                 reach: float, **kw):
    """When the best grid keeps every plane under the target, spend the rest on key chunks:
    a key chunk starts with a latent frame of its own (an intra frame), so shorter key chunks
    (every chunk a key chunk) code more and decode better. Halves the chunk (key_spacings) while
    the grid stays under the target and each spacing scores better than the one before;
    appends the trials and their streams.

    Searched (8 steps) at all 64 planes on grid 4, VID_20191220_170832: 33-frame chunks 0.075
    bpp LPIPS 0.0685, 17-frame key chunks 0.087 bpp 0.0668; unsearched 0.055 / 0.1415, 0.065 /
    0.1408, 9-frame 0.085 / 0.1382. The grid's reach is its unsearched trial's rate times `reach`:
    cockatoo at 0.1 bpp, searched, whose grid-4 trial kept every plane at 0.084, came out at
    0.0997 / 0.1321 with 17-frame key chunks against 0.1001 / 0.1306 with 33-frame ones."""
    best = chosen(trials, bpp)
    for frames in key_spacings(kw["chunk_frames"], best.factor):
        if frames >= len(ref):
            continue  # the input is one chunk of this spacing already: the same stream
        if not under_reach(best, bpp, codec.config.bits, reach):
            return
        options = dict(kw, chunk_frames=frames, key_interval=1, temporal_factor=best.factor, refine=0)
        try:
            # Every chunk a key chunk is every chunk its own group: the rate is the trial's bytes.
            rate, score, planes, stream = _trial_point(codec, ref, info, lpips, bpp=bpp, **options)
        except UsageError:
            return
        trial = FactorTrial(best.factor, rate, score, planes, chunk_frames=frames, key_interval=1)
        trials.append(trial)
        streams[(best.factor, frames)] = stream
        if not (trial.fits(bpp) and trial.score < best.score):
            return
        best = trial


def _trial_point(codec, ref: np.ndarray, info, lpips, **options):
    """(bpp, LPIPS, planes kept, (stream bytes, Compressed)) of the first chunk `ref` (uint8
    [T, H, W, 3]) coded with these options, in memory; `lpips` scores frames against `ref`."""
    from ..bitstream import MvtReader

    buf = io.BytesIO()
    done = codec.compress(iter(ref), buf, info, **options)
    buf.seek(0)
    # Decoded in the encoder's arithmetic (fp32 under auto): which trial wins chooses the stream's
    # bits, so it must not depend on whether the machine decodes in bf16.
    mode = resolve_precision(options["precision"], codec.device, "encode")
    decoded = np.concatenate([c.frames for c in codec.decompress(MvtReader(buf), precision=mode, warnings=[])])
    score = float(lpips(decoded[: len(ref)]).mean())
    rate = done.projected_bpp
    if rate is None:
        rate = (done.bytes - stream_overhead(done.header)) * 8 / (ref.shape[0] * ref.shape[1] * ref.shape[2])
    return rate, score, done.planes[0], (buf.getvalue(), done)
